"""Run the speed benchmarks and gather them in ``benchmarks/results/speed.md``.

    .venv/bin/python benchmarks/run_all.py            # CPU (what `make bench` runs)
    .venv/bin/python benchmarks/run_all.py --gpu      # also the CUDA / bf16 / compile figures

Each script also runs on its own (see its --help); this one runs them one after another
(never in parallel, so they do not disturb each other's timings) and concatenates their
markdown tables under one heading with the date and machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import torch

from bench_models import machine_name

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def run(script: str, *args: str) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), *args]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu", action="store_true", help="also run the CUDA figures")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    p.add_argument("--gather", action="store_true",
                   help="only gather the existing result files into speed.md")
    args = p.parse_args(argv)
    if args.gather:
        gather(args.gpu)
        return 0
    reps = ["--reps", "2"] if args.quick else []
    run("bench_simulate.py", "--steps", "30" if args.quick else "40")
    run("bench_models.py", "--threads", "1", *reps)          # equal parameter count
    run("bench_models.py", "--threads", "1", "--hidden", "11", "--models", "gconv_unet",
        "relaxed_gconv_unet", "steer_unet", "relaxed_steer_unet", *reps)  # equal width
    run("bench_train.py", "--threads", "1", "--steps", "2" if args.quick else "3")
    run("bench_speed.py", *reps, *(["--sim-steps", "60"] if args.quick else []))
    if args.gpu:
        run("bench_models.py", "--device", "cuda", "--amp", "bf16", "--compile",
            "--out", str(RESULTS / "models_gpu.md"))
        run("bench_train.py", "--device", "cuda", "--amp", "bf16", "--compile",
            "--out", str(RESULTS / "train_gpu.md"))
        run("bench_speed.py", "--device", "cuda", "--amp", "bf16", "--compile",
            "--sim-device", "cuda", "--out", str(RESULTS / "speed_run_gpu.md"))
    gather(args.gpu)
    return 0


def gather(gpu: bool) -> Path:
    """Concatenate the result tables under one heading (each file's headings demoted)."""
    parts = [f"# relaxflow speed benchmarks\n\nGathered by `benchmarks/run_all.py` on "
             f"{dt.date.today().isoformat()}; machine: {os.cpu_count()}-core "
             f"{machine_name(torch.device('cpu'))}{' + GPU' if gpu else ', no GPU'}.\n"]
    for name in ("speed_run.md", "speed_run_gpu.md", "simulate.md", "models.md",
                 "models_gpu.md", "train.md", "train_gpu.md"):
        f = RESULTS / name
        if f.exists() and (gpu or "gpu" not in name):
            lines = f.read_text().splitlines()
            parts.append("\n".join("#" + ln if ln.startswith("#") else ln for ln in lines))
    out = RESULTS / "speed.md"
    out.write_text("\n\n".join(parts) + "\n")
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    sys.exit(main())
