"""Every command module of the ``capas`` CLI; importing one registers its commands."""

# ruff: noqa: F401
from capas.cli import data, plot, pretrain, run, summary, train
