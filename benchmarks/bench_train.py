"""Training throughput (samples/s) of every surrogate at equal parameter count.

One sample = one window: ``T_in`` input frames and a ``K``-step autoregressive loss
(``K`` forward passes plus their backward). Each model gets ``hidden`` from
``surrogate.width_for_params`` so that all have about ``--params`` parameters, and is
timed with the trainer's own ``train.objective.train_step`` (AdamW, gradient clipping,
equivariance penalty) on random normalised batches.

    python benchmarks/bench_train.py                       # CPU, 64x64, batch 16, K 6
    python benchmarks/bench_train.py --steps 2 --warmup 1  # quicker
    python benchmarks/bench_train.py --device cuda --amp bf16 --compile

Writes a markdown table to ``benchmarks/results/train.md`` (``--out``) with the date,
machine and torch version.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import torch

from bench_models import grid_option, machine_name, sync  # also puts the root on sys.path
from surrogate import available_models

MODELS = available_models()


def bench_model(name: str, args, device: torch.device) -> dict:
    from surrogate import build_model, count_parameters, width_for_params
    from train.objective import Rollout, train_step

    common = dict(T_in=args.T_in, depth=args.depth, **grid_option(name, args.size))
    hidden = width_for_params(name, args.params, **common)
    torch.manual_seed(0)
    model = build_model(name, hidden=hidden, **common).to(device)
    n_params = count_parameters(model)
    step = torch.compile(model) if args.compile else model
    rollout = Rollout(step)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=4e-4)
    B, C, H = args.batch_size, 3, args.size
    x = torch.randn(B, args.T_in, C, H, H, device=device)
    y = torch.randn(B, args.K, C, H, H, device=device)

    def one() -> None:
        loss, _, _ = train_step(rollout, model, opt, x, y, grad_clip=1.0, amp=args.amp)
        loss.item()  # synchronise

    t0 = time.perf_counter()
    for _ in range(args.warmup):
        one()
    warm = time.perf_counter() - t0
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        one()
    sync(device)
    t = (time.perf_counter() - t0) / args.steps
    return {"model": name, "hidden": hidden, "params": n_params, "step_s": t,
            "samples_per_s": B / t, "warmup_s": warm}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--amp", default="none", choices=("none", "bf16"))
    p.add_argument("--compile", action="store_true")
    p.add_argument("--size", type=int, default=64, help="grid side")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--K", type=int, default=6, help="autoregressive loss steps")
    p.add_argument("--T-in", dest="T_in", type=int, default=10)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--params", type=int, default=500_000,
                   help="target parameter count for every model")
    p.add_argument("--steps", type=int, default=3, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "train.md"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("CUDA is not available")

    rows = []
    for name in args.models:
        r = bench_model(name, args, device)
        rows.append(r)
        print(f"{name:20s} hidden {r['hidden']:3d}  params {r['params']:>9,d}  "
              f"{r['step_s'] * 1e3:8.1f} ms/step  {r['samples_per_s']:8.2f} samples/s",
              flush=True)

    machine = (machine_name(device) if device.type == "cuda" else
               f"{machine_name(device)}, {torch.get_num_threads()} threads, "
               f"{os.cpu_count()} cores")
    lines = [
        "# Training throughput",
        "",
        f"- date: {dt.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {machine} ({platform.platform()})",
        f"- torch {torch.__version__}, python {platform.python_version()}",
        f"- device {device}, amp {args.amp}, compile {args.compile}",
        f"- grid {args.size}x{args.size}, batch {args.batch_size}, T_in {args.T_in}, "
        f"K {args.K} (loss over K autoregressive steps), depth {args.depth}, "
        f"target {args.params:,} parameters; {args.steps} timed steps after "
        f"{args.warmup} warm-up",
        f"- command: `python benchmarks/bench_train.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        "| model | hidden | parameters | ms / step | samples / s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['model']} | {r['hidden']} | {r['params']:,} | {r['step_s'] * 1e3:.0f} "
              f"| {r['samples_per_s']:.2f} |" for r in rows]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
