"""Every command module of the ``capas`` CLI; importing one registers its commands.

One import per line: each group of commands lives in its own module.
"""

# ruff: noqa: F401

import capas.cli.cv
import capas.cli.data
import capas.cli.draw
import capas.cli.ensemble
import capas.cli.generate
import capas.cli.playground
import capas.cli.plot
import capas.cli.pretrain
import capas.cli.run
import capas.cli.sample
import capas.cli.summary
import capas.cli.teach
import capas.cli.train
import capas.cli.translate
