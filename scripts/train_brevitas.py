#!/usr/bin/env python
"""Quantization-aware training of a Q-MLP model and QONNX export (qmlp-train). See --help."""

from qmlp_brevitas.cli.entry_points import train

if __name__ == "__main__":
    train()
