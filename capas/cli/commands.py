"""Every command module of the ``capas`` CLI; importing one registers its commands."""
# ruff: noqa: F401
from capas.cli import data
from capas.cli import summary
from capas.cli import train
from capas.cli import pretrain
from capas.cli import plot
from capas.cli import run
