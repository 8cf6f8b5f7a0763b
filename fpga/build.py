#!/usr/bin/env python
"""Compile any Brevitas QONNX export with FINN (qmlp-build). See --help."""

from qmlp_brevitas.cli.entry_points import build

if __name__ == "__main__":
    build()
