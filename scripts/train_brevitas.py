#!/usr/bin/env python
"""Quantization-aware training of a Q-MLP model and QONNX export. See --help."""

import sys

from qmlp_brevitas.cli.common import quiet_libraries, run_main

if __name__ == "__main__":
    quiet_libraries()
    from qmlp_brevitas.cli.train import main

    sys.exit(run_main(main))
