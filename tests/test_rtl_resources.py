"""The LUT/FF estimates of the project's RTL layers against Yosys synthesis of their HDL.

The project's synthesis flow (``qmlp_brevitas.finn.synth``, YoWASP Yosys from PyPI) maps the
layer's generated HDL to UltraScale+ cells; the estimate formulas were fitted to the whole
calibration grid (``scripts/rtl_resources.py``), and here a few configurations of the grid are
synthesized again and must stay close. A change to a core that the formulas do not follow fails
here.
"""

from __future__ import annotations

import pytest

from qmlp_brevitas.finn.custom_op.rtl.resource_check import calibration_grid, compare
from qmlp_brevitas.rtlsim.node import ensure_finn_settings

CHECKED = (
    "DuplicateStreams INT5 PE1, 2 outputs",
    "StreamingSplit UINT4 SIMD4, 16+16+32",
    "StreamingConcat INT8 SIMD8, 64+64",
    "GlobalAccPool INT8 PE8, 128 ch, 64 tokens",
)


@pytest.fixture(scope="module")
def grid():
    ensure_finn_settings()
    return dict(calibration_grid())


@pytest.mark.parametrize("label", CHECKED)
def test_estimate_follows_yosys(grid, label, tmp_path):
    model = grid[label]
    res = compare(model, model.graph.node[0].name, tmp_path)
    assert res["LUT_yosys"] > 0 and res["FF_yosys"] > 0, res["cells"]
    assert abs(res["LUT_estimate"] - res["LUT_yosys"]) <= max(3, 0.15 * res["LUT_yosys"]), res
    assert abs(res["FF_estimate"] - res["FF_yosys"]) <= max(2, 0.05 * res["FF_yosys"]), res
