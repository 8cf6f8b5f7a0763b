"""``scripts/export_qonnx.py``: export the model of a training run's checkpoint to QONNX again."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..checkpoint import CheckpointError, load_checkpoint
from ..data import build_dataset
from ..export import export_model, first_examples
from ..train import TrainConfig, build_model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Export a trained Q-MLP checkpoint to QONNX.")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt of a training run")
    p.add_argument("--out", help="output folder (default: the checkpoint's folder)")
    p.add_argument("--data-dir", help="dataset folder for the example input (default: the run's)")
    args = p.parse_args(argv)

    state = load_checkpoint(args.checkpoint)
    cfg = TrainConfig.from_dict(state["config"])
    if cfg.w_bits is None:
        raise CheckpointError(f"{args.checkpoint} is a float model; only quantized models export")
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    test_set = build_dataset(cfg.data, args.data_dir or cfg.data_dir, train=False)
    out = Path(args.out or Path(args.checkpoint).parent)
    paths = export_model(model.eval(), first_examples(test_set), out)
    check = paths["verification"]
    print(f"exported {paths['onnx']} (+ input.npy, expected_output.npy)")
    print(
        f"verification example: test image {check['example_index']}, QONNX vs Brevitas max "
        f"difference {check['qonnx_vs_brevitas_max_abs_diff']:.2g}"
        + ("" if check["agrees"] else f" (above {check['atol']}: see export.json)")
    )
    return 0
