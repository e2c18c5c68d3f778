"""The errors capas raises for user mistakes.

Every user-facing error is a :class:`CapasError`: its message says what is wrong and
how to fix it. The command line prints it on one line and exits with code 2, so a
user never sees a traceback from deep inside torch.
"""

from __future__ import annotations


class CapasError(Exception):
    """A mistake the user can fix (bad option, unknown name, malformed file)."""

    exit_code = 2


class DataError(CapasError):
    """A dataset that cannot be found, downloaded, verified or parsed."""


class SpecError(CapasError):
    """A model specification that does not parse or whose shapes do not fit."""


class TrainingError(CapasError):
    """Training that cannot start or had to stop (e.g. a NaN loss)."""


class RunDirError(CapasError):
    """A run directory that is missing, incomplete or not a capas run."""


class DistributedError(TrainingError):
    """A multi-process run that cannot start or lost a rank (``capas train --nproc N``)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (KeyboardInterrupt) during training, with where it stopped and how to resume.

    The message says the epoch that was running, where the last checkpoint is and the
    command that continues the run; the command line prints it and exits with 130 (the
    shell's code for SIGINT), so ``capas train ... && capas evaluate ...`` stops there.

    It is a ``KeyboardInterrupt``, not a :class:`CapasError`: Ctrl-C is not a mistake to fix
    (exit 130, not 2), and it must pass through every ``except Exception`` on its way out
    (a notebook's, a recipe's, a user's retry loop) exactly as a plain Ctrl-C would; code
    that catches ``KeyboardInterrupt`` keeps working unchanged.
    """

    exit_code = 130


class CapasWarning(UserWarning):
    """A training problem capas noticed that does not stop the run (e.g. vanishing gradients)."""
