#!/usr/bin/env python
"""The project's RTL layers' LUT/FF estimates against Yosys (qmlp-rtl-resources). See --help."""

from qmlp_brevitas.cli.entry_points import rtl_resources

if __name__ == "__main__":
    rtl_resources()
