"""One prepared sequence of GPU checks, end to end, with a report.

    python scripts/gpu_check.py --device cuda --size full --out DIR   # one H100, ~8 min
    python scripts/gpu_check.py --device cpu --size tiny              # the same paths, CPU

1. smoke tests on the device: ``simulate`` a small ``rotation`` dataset, ``train`` two
   epochs with ``--amp bf16`` and with ``--compile``, ``--resume`` to a third epoch,
   ``surrogate.load(path, device=...)`` forecasts compared with the CPU's,
   ``torchrun --nproc_per_node 1 -m train`` and a DDP step on ``nccl`` / ``gloo``;
2. the speed table: exported ``unet``, ``gconv_unet``, ``relaxed_gconv_unet`` at the
   benchmark's widths in fp32, bf16 and bf16 + ``torch.compile``, frames/s at 64x64 and
   128x128, against the PhiFlow simulator (batched + jit) on the device and on the CPU;
3. a paper-scale throughput probe: optimiser steps of the paper-scale models (64x64,
   T_in 10, K 6, ~5.6M parameters, batch 16) timed per step, and the GPU-hours of the
   paper-scale accuracy benchmark projected from them.

Writes ``gpu_check.md``, ``gpu_check.json`` and ``gpu_check.log`` to ``--out`` (default
``$OUT`` when set, else ``gpu_check_output/``), after every check; a failed check is
recorded (status, error line, time) and the sequence goes on. Exit code 0 when every
check is ok, 1 otherwise. ``--size full`` keeps to a soft time budget (``--budget-s``):
speed rows and timed steps not started in time are recorded as skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from gpucheck import probe, sizes, smoke, speed
from gpucheck.record import Budget, Context, Recorder

PARTS = {"1": smoke.run, "2": speed.run, "3": probe.run}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--size", choices=sizes.names(), default="full",
                   help="tiny: CPU-test sizes (well under a minute); full: the GPU sizes")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default: $OUT, else gpu_check_output/)")
    p.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS),
                   help="parts to run (default: all three)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="soft time budget in seconds (default: the size's; 0: none)")
    p.add_argument("--work", type=Path, default=None,
                   help="dataset and training runs of part 1 (default: a temporary folder, "
                        "removed at the end; kept out of --out, whose files come back)")
    p.add_argument("--compile-backend", default=None,
                   help="torch.compile backend (default: inductor on cuda, eager on cpu, "
                        "where inductor's C++ compile takes minutes on a small machine)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the parts; 0 when every check is ok."""
    args = parse(argv)
    out = args.out or Path(os.environ.get("OUT") or "gpu_check_output")
    rec = Recorder(out.resolve(), args.device, args.size,
                   sys.argv[1:] if argv is None else list(argv))
    if args.device == "cuda" and not torch.cuda.is_available():
        rec.log("--device cuda: torch sees no CUDA device; every check will fail")
    settings = sizes.size(args.size)
    budget_s = settings["budget_s"] if args.budget_s is None else args.budget_s
    backend = args.compile_backend or ("inductor" if args.device == "cuda" else "eager")
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check_work_"))
    ctx = Context(rec, args.device, settings, Budget(budget_s, settings["shares"]), backend,
                  work.resolve())
    rec.env.update(budget_s=budget_s, compile_backend=backend)
    try:
        for part in args.parts:
            PARTS[part](ctx)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    rec.save()
    bad = [c for c in rec.checks if c.status != "ok"]
    rec.log(f"done: {len(rec.checks) - len(bad)} of {len(rec.checks)} checks ok; "
            f"report {rec.out / 'gpu_check.md'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
