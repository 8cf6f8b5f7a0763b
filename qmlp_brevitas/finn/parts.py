"""Resource capacities of the FPGA parts the flow targets (AMD/Xilinx product tables).

Numbers of the whole device, from the Zynq UltraScale+ (DS891) and Zynq-7000 (DS190) product
tables: CLB LUTs, CLB flip-flops, 18 Kb block RAMs (two per 36 Kb block), UltraRAMs, DSP slices.
"""

from __future__ import annotations

RESOURCES = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")

PART_CAPACITY: dict[str, dict[str, int]] = {
    "xczu7ev": {"LUT": 230_400, "FF": 460_800, "BRAM_18K": 624, "URAM": 96, "DSP": 1_728},
    "xczu3eg": {"LUT": 70_560, "FF": 141_120, "BRAM_18K": 432, "URAM": 0, "DSP": 360},
    "xczu9eg": {"LUT": 274_080, "FF": 548_160, "BRAM_18K": 1_824, "URAM": 0, "DSP": 2_520},
    "xc7z020": {"LUT": 53_200, "FF": 106_400, "BRAM_18K": 280, "URAM": 0, "DSP": 220},
}


class UnknownPartError(ValueError):
    """A part whose capacity the project does not know."""

    def __init__(self, part: str):
        self.part = part
        known = ", ".join(sorted(PART_CAPACITY))
        super().__init__(
            f"no resource capacity known for part {part!r} (known: {known}); give the budget "
            "explicitly with --budget LUT=...,DSP=..."
        )


def part_capacity(part: str) -> dict[str, int]:
    """Capacity of ``part`` (a full part name such as ``xczu7ev-ffvc1156-2-e``)."""
    name = part.lower()
    for family, capacity in PART_CAPACITY.items():
        if name.startswith(family):
            return dict(capacity)
    raise UnknownPartError(part)


def parse_budget(text: str | None, part: str) -> dict[str, float]:
    """``"LUT=30000,DSP=200"`` as a budget; resources not named get the part's capacity."""
    budget: dict[str, float] = dict(part_capacity(part))
    if not text:
        return budget
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip().upper()
        if not sep or name not in RESOURCES:
            raise ValueError(
                f"--budget item {item!r}: write RESOURCE=NUMBER with RESOURCE one of "
                f"{', '.join(RESOURCES)} (e.g. --budget LUT=30000,DSP=200)"
            )
        try:
            amount = float(value)
        except ValueError:
            raise ValueError(f"--budget {name}={value!r}: not a number") from None
        if amount < 0:
            raise ValueError(f"--budget {name}={value}: must not be negative")
        budget[name] = amount
    return budget
