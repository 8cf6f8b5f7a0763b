#!/usr/bin/env python
"""Time the FINN build of a model to its estimates (qmlp-bench-build). See --help."""

from qmlp_brevitas.cli.entry_points import bench_build

if __name__ == "__main__":
    bench_build()
