#!/usr/bin/env python
"""Per-layer activation ranges with and without LayerNorm and bounded activations. See --help."""

import sys

from qmlp_brevitas.cli.common import quiet_libraries, run_main

if __name__ == "__main__":
    quiet_libraries()
    from qmlp_brevitas.analysis import main

    sys.exit(run_main(main))
