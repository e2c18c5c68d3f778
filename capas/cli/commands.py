"""Every command module of the ``capas`` CLI; importing one registers its commands."""
# ruff: noqa: F401
