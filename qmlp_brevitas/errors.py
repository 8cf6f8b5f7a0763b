"""The project's own errors: the ones a user can act on, each a one-line message.

Every command-line tool (:mod:`qmlp_brevitas.cli`) prints a :class:`QMLPError` as one line
(``error: ...``) and exits with its :attr:`~QMLPError.exit_code`; any other exception (a
``ValueError`` from deep inside torch or qonnx, say) is a bug and keeps its traceback.

Each error class also derives from the built-in class that describes it (``ValueError``,
``FileNotFoundError``, ``RuntimeError``), so code that catches those keeps working. The classes
live beside the code that raises them (``CheckpointError`` in :mod:`qmlp_brevitas.checkpoint`,
``BuildError`` in :mod:`qmlp_brevitas.finn.build`, ...) and derive from the bases here.

Exit codes: 2 for bad input (the user changes a setting or a file and reruns), 1 for a check
that ran and failed (a FINN build that stopped, a stage or an RTL layer that does not match),
130 for an interrupt.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2
EXIT_CHECK_FAILED = 1
EXIT_INTERRUPTED = 130


class QMLPError(Exception):
    """Base of the project's errors; the message says what is wrong and what to do."""

    exit_code: int = EXIT_BAD_INPUT


class ConfigError(QMLPError, ValueError):
    """A setting out of range, or settings that do not fit together."""


class RunFolderError(QMLPError, OSError):
    """An output folder that cannot be used (its parent is a file, it holds another run, ...)."""


class CheckFailedError(QMLPError):
    """A check that ran and failed, or that had nothing to check."""

    exit_code = EXIT_CHECK_FAILED
