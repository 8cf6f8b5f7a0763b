"""``qmlp-bench`` (``scripts/bench_step.py``): time one QAT training step (forward, backward,
AdamW update) of a Q-MLP model.

For planning GPU time of the paper-size runs:
    qmlp-bench --model qmlp_resmlp_24_224 --w 4 --a 4 --batch-size 8
The quantizers are calibrated on random data first, as in a real run; the input is random.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv=None) -> int:
    import torch

    from ..distributed import default_device
    from ..models import count_params, create_qmlp, list_variants
    from ..train import calibrate

    p = argparse.ArgumentParser(description="Time one QAT training step of a Q-MLP model.")
    p.add_argument("--model", default="qmlp_resmlp_24_224", choices=list_variants())
    p.add_argument("--w", type=int, default=4)
    p.add_argument("--a", type=int, default=4)
    p.add_argument("--float", action="store_true", help="the float model")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device()
    bits = {} if args.float else {"w_bits": args.w, "a_bits": args.a}
    torch.manual_seed(0)
    model = create_qmlp(args.model, **bits).to(device)
    shape = (args.batch_size, model.in_chans, model.img_size, model.img_size)
    x = torch.randn(shape, device=device)
    y = torch.randint(0, model.num_classes, (args.batch_size,), device=device)
    if not args.float:
        calibrate(model, [(x, y)], batches=1)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for i in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    precision = "float" if args.float else f"W{args.w}A{args.a}"
    print(
        f"{args.model} {precision}, {count_params(model) / 1e6:.1f} M params, batch "
        f"{args.batch_size}, {device} ({torch.get_num_threads()} threads): "
        f"{step:.2f} s per step (median of {len(times)}, min {min(times):.2f}, "
        f"max {max(times):.2f}), {args.batch_size / step:.1f} images/s"
    )
    return 0
