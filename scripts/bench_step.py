#!/usr/bin/env python
"""Time one QAT training step of a Q-MLP model (qmlp-bench). See --help."""

from qmlp_brevitas.cli.entry_points import bench

if __name__ == "__main__":
    bench()
