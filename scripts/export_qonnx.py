#!/usr/bin/env python
"""Export a trained Q-MLP checkpoint to QONNX or ONNX QDQ (qmlp-export). See --help."""

from qmlp_brevitas.cli.entry_points import export

if __name__ == "__main__":
    export()
