"""Simulation throughput: eager one-simulation-at-a-time vs the package's batched + jit
generator (float64 CG, its reliable closed-box setting), in one run.

One frame = one solver step of one simulation. Writes a markdown table to
benchmarks/results/simulate.md.

    .venv/bin/python benchmarks/bench_simulate.py --steps 40 --sims 32
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import simulate  # noqa: E402
from simulate.phiflow_step import simulate_batch  # noqa: E402


def eager_one_at_a_time(res: int, steps: int, n_sims: int) -> dict:
    """The same physics and solver, not compiled, one simulation per call; the first
    step of each run (set-up) is excluded."""
    import torch
    torch.set_num_threads(1)
    spec = simulate.preset("rotation", resolution=res, n_magnitudes=1, steps=steps)
    times = []
    for i in range(n_sims):
        stamps = []
        simulate_batch(spec, [i], jit=False, on_step=lambda: stamps.append(time.perf_counter()))
        times.append((stamps[-1] - stamps[0], len(stamps) - 1))
    secs = sum(t for t, _ in times)
    frames = sum(n for _, n in times)
    return {"frames": frames, "seconds": secs, "fps": frames / secs}


def batched_generator(res: int, steps: int, n_sims: int, batch_size: int, workers: int) -> dict:
    """The package's generator end to end (tracing, simulation, NetCDF writing)."""
    spec = simulate.preset("rotation", resolution=res, n_magnitudes=max(1, n_sims // 4), steps=steps)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        s = simulate.generate(spec, Path(d) / "bench.nc", batch_size=batch_size, workers=workers,
                              progress=False)
        wall = time.perf_counter() - t0
    frames = len(spec.sims) * steps
    return {"frames": frames, "seconds": wall, "fps": frames / wall,
            "compute_fps": s["frames_per_second"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--sims", type=int, default=32, help="simulations for the batched generator")
    ap.add_argument("--eager-sims", type=int, default=2)
    ap.add_argument("--batch-sizes", default="16,32")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "simulate.md"))
    a = ap.parse_args(argv)

    eager = eager_one_at_a_time(a.res, a.steps, a.eager_sims)
    rows = [("eager, one simulation at a time (torch, float64 CG, 1 thread)", 1, 1, eager, None)]
    print(f"eager: {eager['fps']:.1f} frames/s", flush=True)
    configs = dict.fromkeys((min(b, max(1, a.sims // w)), w)  # every worker gets a part
                            for w in map(int, a.workers.split(","))
                            for b in map(int, a.batch_sizes.split(",")))
    for b, w in configs:
        r = batched_generator(a.res, a.steps, a.sims, b, w)
        rows.append(("simulate.generate: batched + jit_compile, float64 CG", b, w, r, r["fps"] / eager["fps"]))
        print(f"generate batch {b} workers {w}: {r['fps']:.1f} frames/s end to end "
              f"({r['compute_fps']:.1f} in the simulation loop), {r['fps'] / eager['fps']:.1f}x eager", flush=True)

    best = max(r[4] for r in rows if r[4] is not None)
    import phi
    import torch
    machine = f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), no GPU" \
        if not torch.cuda.is_available() else torch.cuda.get_device_name()
    lines = [
        "# Simulation throughput (`benchmarks/bench_simulate.py`)",
        "",
        f"Date: {dt.date.today().isoformat()}; machine: {machine}; torch {torch.__version__}, "
        f"phiflow {phi.__version__}.",
        f"Scenario `rotation` at {a.res}x{a.res}, {a.steps} solver steps per simulation; one frame = one "
        f"step of one simulation. The generator figure is end to end (import excluded; jit tracing, "
        f"simulation, residual checks and NetCDF writing included) for {a.sims} simulations.",
        "",
        "| method | batch | workers | frames | seconds | frames/s | vs eager |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, b, w, r, ratio in rows:
        lines.append(f"| {name} | {b} | {w} | {r['frames']} | {r['seconds']:.1f} | {r['fps']:.1f} | "
                     f"{'1.0x' if ratio is None else f'{ratio:.1f}x'} |")
    lines += ["", f"Best speed-up over eager one-at-a-time: **{best:.1f}x** (goal: at least 20x).", ""]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
