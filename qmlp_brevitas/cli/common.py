"""Shared pieces of the command-line tools: quiet start-up and clear errors."""

from __future__ import annotations

import logging
import os
import sys
import warnings


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input from the user: printed as one line, exit status 2.

    Imported here, not at module level, so that :func:`quiet_libraries` runs before Brevitas loads.
    """
    from ..checkpoint import CheckpointError
    from ..data import DatasetNotFoundError
    from ..export import OnnxFileError
    from ..quant import BitWidthError

    return (
        BitWidthError,
        CheckpointError,
        DatasetNotFoundError,
        OnnxFileError,
        FileExistsError,
        FileNotFoundError,
        ValueError,
    )


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


def run_main(main, argv=None) -> int:
    """Run ``main(argv)``; user errors become one line on stderr and exit status 2."""
    errors = user_errors()
    try:
        return main(argv) or 0
    except errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted; rerun with --resume to continue from the last finished epoch",
            file=sys.stderr,
        )
        return 130
