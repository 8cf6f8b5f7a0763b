"""The design-space plan, table, csv and plot (the FINN builds are covered by the build tests)."""

from __future__ import annotations

import csv

from qmlp_brevitas import design_space as ds


def _result(label, technique, bits, acc, min_lut, fps, lut, fits_30k):
    search = {
        "part": {"fps": fps, "LUT": lut, "DSP": 10, "limited_by": "input generator"},
        "LUT=30000": {"fps": fps / 4 if fits_30k else None, "LUT": None, "limited_by": "x"},
    }
    return {
        "label": label,
        "technique": technique,
        "bits": bits,
        "test_acc": acc,
        "layers": 126,
        "min_lut": min_lut,
        "verified": True,
        "search": search,
    }


def test_points_cover_bits_techniques_and_requant(tmp_path):
    points = ds.default_points(tmp_path)
    labels = [p.label for p in points]
    assert len(points) == 10 and "Q-MLP W8A8, Requant" in labels
    assert {p.bits for p in points} == {2, 4, 8}
    # Q-MLP is the preset (the ablation's last row, integer LayerNorm); every row exists
    from qmlp_brevitas.ablation import ablation_rows

    keys = [r.key for r in ablation_rows()]
    assert {p.row for p in points if p.technique == "Q-MLP"} == {keys[-1]}
    assert {p.row for p in points} <= set(keys)
    assert all(p.run_dir.parent.name == p.row for p in points)
    assert [p.requant_bits for p in points if p.requant_bits] == [8]
    assert all(str(p.run_dir).endswith("seed0") for p in points)


def test_table_csv_and_plot(tmp_path):
    results = [
        _result("Q-MLP W4A4", "Q-MLP", 4, 0.842, 30553, 208551, 117331, False),
        _result("naive + ReLU6 W4A4", "naive + ReLU6", 4, 0.8373, 29277, 208551, 113653, True),
    ]
    table = ds.markdown(results, (30_000,))
    lines = table.strip().splitlines()
    assert lines[0].count("|") == 8 and len(lines) == 4
    assert "| Q-MLP W4A4 | 84.20% | 126 | 30,553 | 208,551 | 117,331 | none fits |" in table
    assert "| 52,138 |" in table
    rows = list(csv.reader(open(ds.write_csv(results, tmp_path / "d.csv"))))
    assert rows[1][:3] == ["Q-MLP W4A4", "Q-MLP", "4"] and len(rows) == 3
    png = ds.plot(results, tmp_path / "d.png")
    assert png.stat().st_size > 10_000
