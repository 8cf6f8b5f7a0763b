#!/usr/bin/env python
"""The Q-MLP ablation: float, naive quantization, then the techniques one at a time. See --help."""

import sys

from qmlp_brevitas.cli.common import quiet_libraries, run_main

if __name__ == "__main__":
    quiet_libraries()
    from qmlp_brevitas.ablation import main

    sys.exit(run_main(main))
