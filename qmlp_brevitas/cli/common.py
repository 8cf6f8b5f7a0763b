"""Shared pieces of the command-line tools: quiet start-up and one error and exit-code policy.

The policy (:func:`run_main`): a :class:`~qmlp_brevitas.errors.QMLPError` is bad input or a
failed check that the user can act on; it becomes one line on stderr (``error: ...``) and its
``exit_code`` (2 bad input, 1 a failed check). Every other exception is a bug and propagates
with its traceback. An interrupt exits with 130.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from ..errors import EXIT_INTERRUPTED, QMLPError

Main = Callable[[Sequence[str] | None], int | None]


def quiet_libraries() -> None:
    """Hide start-up noise of torch/brevitas that says nothing about the user's run."""
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="fast_hadamard_transform package not found")
    warnings.filterwarnings("ignore", message="Named tensors and all their associated APIs")
    warnings.filterwarnings("ignore", message=".*rename.*", category=UserWarning)
    warnings.filterwarnings("ignore", message="Defining your `__torch_function__`")
    warnings.filterwarnings("ignore", message="To copy construct from a tensor")
    warnings.filterwarnings("ignore", message="Positional args are being deprecated")


def run_main(main: Main, argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)`` under the error policy of the module docstring; the exit status."""
    try:
        return main(argv) or 0
    except QMLPError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
