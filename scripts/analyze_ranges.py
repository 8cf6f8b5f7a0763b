#!/usr/bin/env python
"""Per-layer activation ranges (qmlp-ranges). See --help."""

from qmlp_brevitas.cli.entry_points import ranges

if __name__ == "__main__":
    ranges()
