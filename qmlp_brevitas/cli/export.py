"""``qmlp-export`` (``scripts/export_qonnx.py``): export a training run's checkpoint again.

``--format qonnx`` writes the QONNX model (``model.onnx``) with its verification data;
``--format qdq`` also the standard-ONNX QDQ model (``model_qdq.onnx``, opset 21,
QuantizeLinear/DequantizeLinear with 4- and 8-bit types) and checks onnxruntime's predictions
on it against Brevitas' on the first ``--check-images`` test images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.data import Subset

from ..checkpoint import CheckpointError, load_checkpoint, load_model_state
from ..data import build_dataset, make_loader
from ..errors import ConfigError
from ..export import export_model, export_qdq_checked, first_examples, write_json
from ..layout import RunFolder, check_output_folder
from ..train import TrainConfig, build_model


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Export a trained Q-MLP checkpoint to QONNX, or also to standard-ONNX QDQ."
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt of a training run")
    p.add_argument("--out", help="output folder (default: the checkpoint's folder)")
    p.add_argument("--data-dir", help="dataset folder for the example input (default: the run's)")
    p.add_argument(
        "--format",
        choices=("qonnx", "qdq"),
        default="qonnx",
        help="qonnx: model.onnx for FINN; qdq: also model_qdq.onnx for onnxruntime",
    )
    p.add_argument(
        "--check-images",
        type=int,
        default=1000,
        help="test images on which the QDQ model's predictions are compared (default 1000)",
    )
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.check_images < 1:
        raise ConfigError(f"--check-images must be at least 1, got {args.check_images}")
    out = RunFolder(check_output_folder(args.out or Path(args.checkpoint).parent))
    state = load_checkpoint(args.checkpoint)
    cfg = TrainConfig.from_dict(state["config"])
    if cfg.w_bits is None:
        raise CheckpointError(f"{args.checkpoint} is a float model; only quantized models export")
    model = build_model(cfg)
    load_model_state(model, state, args.checkpoint)
    model.eval()
    test_set = build_dataset(cfg.data, args.data_dir or cfg.data_dir, train=False)
    paths = export_model(model, first_examples(test_set), out.root)
    check = paths["verification"]
    print(f"exported {paths['onnx']} (+ input.npy, expected_output.npy)")
    print(
        f"verification example: test image {check['example_index']}, QONNX vs Brevitas max "
        f"difference {check['qonnx_vs_brevitas_max_abs_diff']:.2g}"
        + ("" if check["agrees"] else f" (above {check['atol']}: see export.json)")
    )
    if args.format == "qdq":
        images = Subset(test_set, range(min(args.check_images, len(test_set))))
        batches = (x for x, _ in make_loader(images, 256, train=False))
        with torch.no_grad():
            qdq = export_qdq_checked(model, out, batches)
        write_json(out.export_record, {**check, "qdq": qdq})
        print(
            f"exported {qdq['onnx']} (QDQ, opset 21); onnxruntime vs Brevitas on the first "
            f"{qdq['images']} test images: {qdq['same_prediction']} same predictions, "
            f"{qdq['within_atol']} outputs within {qdq['atol']:g} (max difference "
            f"{qdq['max_abs_diff']:.2g})"
        )
    return 0
