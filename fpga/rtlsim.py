#!/usr/bin/env python
"""Simulate every FINN RTL layer of a build folder in Verilator (qmlp-rtlsim). See --help."""

from qmlp_brevitas.cli.entry_points import rtlsim

if __name__ == "__main__":
    rtlsim()
