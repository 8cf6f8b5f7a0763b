#!/usr/bin/env python
"""Export a trained Q-MLP checkpoint to QONNX. See --help."""

import sys

from qmlp_brevitas.cli.common import quiet_libraries, run_main

if __name__ == "__main__":
    quiet_libraries()
    from qmlp_brevitas.cli.export import main

    sys.exit(run_main(main))
