#!/usr/bin/env python
"""The Q-MLP ablation, one technique at a time (qmlp-ablation). See --help."""

from qmlp_brevitas.cli.entry_points import ablation

if __name__ == "__main__":
    ablation()
