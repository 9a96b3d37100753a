"""Surrogate vs simulator: simulated time per wall-clock second at 64x64, side by side.

The simulator is timed in its best configuration (batched along PhiFlow's batch
dimension, ``jit_compile`` on the torch backend, the reliable float64 CG solve) and as
the eager one-simulation-at-a-time loop. A surrogate step advances ``--stride`` solver
steps (the dataset's ``--save-every``), so one predicted frame counts as ``stride``
solver steps. Surrogates run exported (plain ``Conv2d`` kernels), batched, without
autograd, exactly like ``Surrogate.rollout``. Writes ``benchmarks/results/speed_run.md``.

    .venv/bin/python benchmarks/bench_speed.py                    # CPU
    .venv/bin/python benchmarks/bench_speed.py --device cuda --amp bf16 --compile
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import torch

from bench_models import autocast, grid_option, machine_name, sync  # also puts the root on sys.path
import surrogate

ROOT = Path(__file__).resolve().parents[1]


def simulator_rates(res: int, steps: int, sims: int, eager_sims: int, device: str,
                    eager_steps: int | None = None) -> dict:
    """frames/s (one solver step of one simulation) of the eager loop and the batched
    jit generator over whole ``steps``-step runs; ``solver_dt`` is the rotation preset's
    time step. The pressure solve needs more CG iterations as the plume grows, so the
    first steps run faster than a whole run: ``batched_fps_early`` is the rate over the
    first 40 steps after tracing, reported for comparison only."""
    import simulate
    from simulate.phiflow_step import simulate_batch

    spec = simulate.preset("rotation", resolution=res, n_magnitudes=max(1, sims // 4),
                           steps=steps)
    espec = (spec if not eager_steps or eager_steps >= steps else
             simulate.preset("rotation", resolution=res, n_magnitudes=max(1, sims // 4),
                             steps=eager_steps))
    stamps: list[float] = []
    for i in range(eager_sims):
        s: list[float] = []
        simulate_batch(espec, [i], jit=False, device=device,
                       on_step=lambda: s.append(time.perf_counter()))
        stamps.append((s[-1] - s[0], len(s) - 1))
    idx = list(range(len(spec.sims)))
    s2: list[float] = []
    simulate_batch(spec, idx, jit=True, device=device,
                   on_step=lambda: s2.append(time.perf_counter()))
    warm = min(8, len(s2) // 3)  # jit tracing happens in the first calls
    early = min(len(s2) - 1, warm + 40)
    return {"solver_dt": float(spec.dt), "eager_steps": int(espec.steps),
            "eager_fps": sum(n for _, n in stamps) / sum(t for t, _ in stamps),
            "batched_fps": len(idx) * (len(s2) - 1 - warm) / (s2[-1] - s2[warm]),
            "batched_fps_early": len(idx) * (early - warm) / (s2[early] - s2[warm]),
            "batched_sims": len(idx), "steps": int(spec.steps)}


def surrogate_rate(name: str, params: float, args, device: torch.device) -> dict:
    cfg = dict(T_in=args.T_in, depth=args.depth, **grid_option(name, args.res))
    hidden = surrogate.width_for_params(name, int(params), **cfg)
    model = surrogate.build_model(name, hidden=hidden, **cfg).to(device).eval()
    n_params = surrogate.count_parameters(model)
    net = surrogate.export(model).eval()
    if args.compile:
        net = torch.compile(net)
    x0 = torch.randn(args.batch, args.T_in, 3, args.res, args.res, device=device)

    def rollout(n: int) -> None:
        x = x0
        for _ in range(n):
            y = net(x)
            x = torch.cat([x[:, 1:], y[:, None].to(x.dtype)], dim=1)

    with torch.inference_mode(), autocast(device, args.amp):
        rollout(args.warmup)
        sync(device)
        best = float("inf")
        for _ in range(args.reps):
            t0 = time.perf_counter()
            rollout(args.rollout_steps)
            sync(device)
            best = min(best, time.perf_counter() - t0)
    return {"model": name, "hidden": hidden, "params": n_params,
            "fps": args.batch * args.rollout_steps / best}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--sim-steps", type=int, default=310,
                   help="solver steps of the timed batched runs (default 310, the paper's "
                        "run length; early steps are faster than late ones)")
    p.add_argument("--eager-steps", type=int, default=None,
                   help="solver steps of the eager run (default: --sim-steps)")
    p.add_argument("--sims", type=int, default=32, help="simulations batched")
    p.add_argument("--eager-sims", type=int, default=1)
    p.add_argument("--sim-device", default="cpu", help="device of the simulator (cpu|cuda)")
    p.add_argument("--stride", type=int, default=4, help="solver steps per surrogate step")
    p.add_argument("--models", nargs="+", default=surrogate.available_models())
    p.add_argument("--params", default="1e6,1e5", help="parameter targets, comma separated")
    p.add_argument("--T-in", dest="T_in", type=int, default=10)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rollout-steps", type=int, default=5)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["none", "bf16"], default="none")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "speed_run.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    sim = simulator_rates(args.res, args.sim_steps, args.sims, args.eager_sims, args.sim_device,
                          args.eager_steps)
    sdt = sim["solver_dt"]
    print(f"simulator: eager {sim['eager_fps']:.1f} frames/s, batched+jit "
          f"{sim['batched_fps']:.1f} frames/s", flush=True)
    rows = []
    for params in [float(v) for v in args.params.split(",")]:
        for name in args.models:
            r = surrogate_rate(name, params, args, device)
            r["sim_time_per_s"] = r["fps"] * args.stride * sdt
            rows.append(r)
            print(f"{name:>20} {r['params']:>9,} params: {r['fps']:8.1f} frames/s", flush=True)

    text = report(sim, rows, args, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


def report(sim: dict, rows: list[dict], args: argparse.Namespace, device: torch.device) -> str:
    """The markdown table: simulator (eager, batched) and every surrogate."""
    sdt = sim["solver_dt"]
    best_sim = sim["batched_fps"] * sdt
    eager_sim = sim["eager_fps"] * sdt
    lines = [
        "## Surrogate vs simulator (`benchmarks/bench_speed.py`)", "",
        f"Date {dt.date.today().isoformat()}; surrogates on {machine_name(device)} "
        f"({args.device}, amp {args.amp}, compile {args.compile}), simulator on "
        f"{args.sim_device}; torch {torch.__version__}; {torch.get_num_threads()} CPU threads.",
        f"{args.res}x{args.res} `rotation` smoke plume, solver dt {sdt:g}. Simulated time per "
        f"wall-clock second = frames/s x time per frame; a surrogate frame spans "
        f"{args.stride} solver steps (`--save-every {args.stride}`). Surrogates: exported, "
        f"batch {args.batch}, T_in {args.T_in}, depth {args.depth}, "
        f"{args.rollout_steps}-step rollouts, best of {args.reps}. Simulator: whole "
        f"{sim['steps']}-step runs (eager: {sim['eager_steps']} steps; batched: after 8 "
        f"steps of jit tracing); over only its first 40 steps after tracing the batched "
        f"simulator runs {sim['batched_fps_early']:.1f} frames/s (the pressure solve "
        f"needs more CG iterations as the plume grows).", "",
        "| method | parameters | frames/s | simulated time / s | vs simulator best | "
        "vs eager |", "|---|---:|---:|---:|---:|---:|",
        f"| simulator, eager, one simulation at a time | | {sim['eager_fps']:.1f} | "
        f"{eager_sim:.1f} | {eager_sim / best_sim:.2f}x | 1.0x |",
        f"| simulator, batched ({sim['batched_sims']}) + jit, float64 CG | | "
        f"{sim['batched_fps']:.1f} | {best_sim:.1f} | 1.00x | {best_sim / eager_sim:.1f}x |",
    ]
    for r in rows:
        lines.append(f"| {r['model']} (exported, stride {args.stride}) | {r['params']:,} | "
                     f"{r['fps']:.1f} | {r['sim_time_per_s']:.1f} | "
                     f"{r['sim_time_per_s'] / best_sim:.1f}x | "
                     f"{r['sim_time_per_s'] / eager_sim:.0f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
