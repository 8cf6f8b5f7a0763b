#!/usr/bin/env python
"""Accuracy against LUTs and frames/s, Q-MLP vs naive (qmlp-design-space). See --help."""

from qmlp_brevitas.cli.entry_points import design_space

if __name__ == "__main__":
    design_space()
