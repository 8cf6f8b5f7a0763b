"""The LUT/FF estimates of the project's RTL layers against Yosys synthesis of their HDL.

Yosys (Debian package, installed by scripts/setup.sh) maps the layer's generated HDL to
UltraScale+ cells; the estimate formulas were fitted to the whole calibration grid
(``scripts/rtl_resources.py``), and here a few configurations of the grid are synthesized again
and must stay close. A change to a core that the formulas do not follow fails here.
"""

from __future__ import annotations

import pytest

from qmlp_brevitas.finn.custom_op.rtl.synth import (
    calibration_grid,
    cell_counts,
    compare,
    resources,
    yosys_available,
)
from qmlp_brevitas.rtlsim.node import ensure_finn_settings

CHECKED = (
    "DuplicateStreams INT5 PE1, 2 outputs",
    "StreamingSplit UINT4 SIMD4, 16+16+32",
    "StreamingConcat INT8 SIMD8, 64+64",
    "GlobalAccPool INT8 PE8, 128 ch, 64 tokens",
)


@pytest.fixture(scope="module")
def grid():
    if not yosys_available():
        pytest.fail("yosys is missing: install the Debian package yosys (scripts/setup.sh does)")
    ensure_finn_settings()
    return dict(calibration_grid())


@pytest.mark.parametrize("label", CHECKED)
def test_estimate_follows_yosys(grid, label):
    model = grid[label]
    res = compare(model, model.graph.node[0].name)
    assert res["LUT_yosys"] > 0 and res["FF_yosys"] > 0, res["cells"]
    assert abs(res["LUT_estimate"] - res["LUT_yosys"]) <= max(3, 0.15 * res["LUT_yosys"]), res
    assert abs(res["FF_estimate"] - res["FF_yosys"]) <= max(2, 0.05 * res["FF_yosys"]), res


def test_cell_counting():
    stat = """
   Number of cells:                 47
     BUFG                            1
     FDRE                           10
     INV                             1
     LUT4                            1
     LUT5                            3
     RAM64M8                         2
     RAM64X1S                        3
"""
    cells = cell_counts(stat)
    assert cells["FDRE"] == 10 and cells["RAM64M8"] == 2
    assert resources(cells) == {"LUT": 1 + 1 + 3 + 2 * 8 + 3, "FF": 10}
