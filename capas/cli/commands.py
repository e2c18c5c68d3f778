"""Every command module of the ``capas`` CLI; importing one registers its commands.

One import per line: each group of commands lives in its own module.
"""

# ruff: noqa: F401

import capas.cli.data
import capas.cli.draw
import capas.cli.plot
import capas.cli.pretrain
import capas.cli.run
import capas.cli.summary
import capas.cli.teach
import capas.cli.train
