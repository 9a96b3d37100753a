"""Speed at useful accuracy: trained checkpoints timed through ``Surrogate.rollout`` next
to the simulator's best CPU configuration on the same grid, over the same physical time.

Rows: every ``seed0`` run of a regime-map cache (``--work``; its ``result.json`` holds the
model's test scores, ``--regime-json`` the persistence RMSE of the same windows), so each
row pairs a rollout speed with a measured ratio to persistence. One predicted frame
advances ``save_every`` solver steps of the data it was trained on, so a surrogate's
simulated time per second is ``frames/s x save_every x dt``. The simulator is the same
scenario at the same resolution over whole runs, batched and jit-compiled, searched over
batch sizes and CG precision (its best is the reference). Also reported: FLOPs per frame
(the exported convolutions, counted by hooks), the achieved FLOP/s and its share of the
CPU's peak. ``--sizes 64`` adds randomly initialised models of the same architectures at
64x64 against the simulator at 64x64 (speed only: no model was trained there).

    .venv/bin/python benchmarks/bench_frontier.py --work benchmarks/work/regime-cpu
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accuracy import write_json  # noqa: E402
from bench_models import machine_name  # noqa: E402
import surrogate  # noqa: E402


def conv_flops(net: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward of ``net`` on ``x`` in its ``Conv2d`` layers (2 per MAC)."""
    total = [0.0]

    def hook(m: torch.nn.Conv2d, _inp, out: torch.Tensor) -> None:
        k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
        total[0] += 2.0 * out.numel() * k

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.inference_mode():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def cpu_peak_flops(threads: int) -> float:
    """An estimate of the fp32 peak: ``threads`` cores x clock x 32 FLOP per cycle (two
    256-bit FMA units, AVX2; 64 with AVX-512)."""
    mhz, wide = 0.0, False
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            mhz = max(mhz, float(line.split(":")[1]))
        if line.startswith("flags"):
            wide = wide or " avx512f " in line + " "
    return threads * mhz * 1e6 * (64 if wide else 32)


def data_save_every(sur: surrogate.Surrogate) -> int:
    """Solver steps per stored frame of the data ``sur`` was trained on (its first file's
    ``save_every``; 1 when the file or the attribute is gone)."""
    import xarray as xr
    files = sur.record.data.files
    try:
        with xr.open_dataset(files[0]) as ds:
            return int(ds.attrs["save_every"])
    except (OSError, IndexError, KeyError, ValueError, TypeError):
        return 1


def surrogate_row(sur: surrogate.Surrogate, batches: list[int], frames: int,
                  reps: int, frozen: bool = True) -> dict:
    """frames/s of ``sur.rollout`` (exported; ``frozen``: the traced, frozen export), at
    the best of the ``batches`` sizes (histories per call, best of ``reps`` each), and
    FLOPs per frame."""
    ny, nx = sur.grid
    best_fps, best_batch = 0.0, None
    for batch in batches:
        hist = torch.randn(batch, sur.T_in, len(sur.layout.channels), ny, nx)
        sur.rollout(hist, 2, batch_size=batch, frozen=frozen)  # export/trace, warm up
        for _ in range(reps):
            t0 = time.perf_counter()
            sur.rollout(hist, frames, batch_size=batch, frozen=frozen)
            fps = batch * frames / (time.perf_counter() - t0)
            if fps > best_fps:
                best_fps, best_batch = fps, batch
    flops = conv_flops(sur.exported(), torch.zeros(1, sur.T_in, len(sur.layout.channels),
                                                   ny, nx))
    return {"params": surrogate.count_parameters(sur.model), "T_in": sur.T_in,
            "fps": best_fps, "batch": best_batch, "frozen": frozen,
            "flops_per_frame": flops}


def simulator_search(scenario: str, params: dict, batches: list[int],
                     precisions: list[int]) -> list[dict]:
    """frames/s (one solver step of one simulation) of the batched jit simulator over
    whole runs, for each batch size and CG precision; a configuration whose solve does
    not converge is recorded as failed."""
    import simulate
    from simulate.phiflow_step import SimulationError, simulate_batch
    rows = []
    for prec in precisions:
        for b in batches:
            p = {**params, "n_magnitudes": max(1, b // 4), "late_start": 0}
            spec = simulate.preset(scenario, **p)
            spec = spec.__class__.from_dict({**spec.to_dict(), "solver": {
                **spec.to_dict()["solver"], "precision": prec}})
            idx = list(range(min(b, len(spec.sims))))
            stamps: list[float] = []
            try:
                simulate_batch(spec, idx, jit=True, device="cpu",
                               on_step=lambda: stamps.append(time.perf_counter()))
            except SimulationError as e:
                rows.append({"batch": len(idx), "precision": prec, "fps": None,
                             "note": str(e).split(":")[0]})
                continue
            warm = min(8, len(stamps) // 3)  # jit tracing happens in the first calls
            fps = len(idx) * (len(stamps) - 1 - warm) / (stamps[-1] - stamps[warm])
            rows.append({"batch": len(idx), "precision": prec, "fps": fps,
                         "dt": float(spec.dt)})
    return rows


def regime_runs(work: Path, regime_json: Path, splits=("test-domain", "test-future")
                ) -> list[dict]:
    """The ``seed0`` runs of a regime-map cache with their ratios to persistence
    (velocity and all fields) on ``splits``."""
    base = json.loads(regime_json.read_text())["persistence"]
    out = []
    for res in sorted(work.glob("runs/*/*/seed0/result.json")):
        r = json.loads(res.read_text())
        ref = base.get(r["data_key"])
        if ref is None or not (res.parent / "best.pt").is_file():
            continue
        ratio = {f"{s}/{col}": r["scores"][s][key] / ref[col][s]
                 for s in splits for col, key in (("velocity", "rmse_velocity"),
                                                  ("all", "rmse"))}
        out.append({"data": r["data_key"], "label": r["label"], "model": r["model"],
                    "ckpt": res.parent / "best.pt", **ratio})
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "regime-cpu")
    p.add_argument("--regime-json", type=Path,
                   default=ROOT / "benchmarks" / "results" / "regime" / "regime_cpu.json")
    p.add_argument("--data", nargs="*", default=None, help="data keys to keep (default all)")
    p.add_argument("--batch", type=int, nargs="+", default=[32, 128],
                   help="rollout batch sizes; each model's best is reported")
    p.add_argument("--no-frozen", dest="frozen", action="store_false",
                   help="time the exported model without tracing and freezing it")
    p.add_argument("--frames", type=int, default=20, help="rollout frames per timing")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--sim-batches", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--sim-precisions", type=int, nargs="+", default=[64, 32])
    p.add_argument("--big-sim-batches", type=int, nargs="+", default=[32, 128],
                   help="simulator batch sizes on grids other than 32x32 (float64)")
    p.add_argument("--sim-steps", type=int, default=160, help="solver steps per run")
    p.add_argument("--sizes", type=int, nargs="+", default=[32])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "frontier")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    runs = [r for r in regime_runs(args.work, args.regime_json)
            if args.data is None or r["data"] in args.data]
    if not runs:
        print(f"no trained runs with results in {args.work}", file=sys.stderr)
        return 2
    save_every = {}
    for r in runs:
        sur = surrogate.load(r["ckpt"], device="cpu")
        save_every[r["data"]] = data_save_every(sur)
        r.update(surrogate_row(sur, args.batch, args.frames, args.reps, args.frozen))
    sims = {}
    for size in args.sizes:  # the full search at 32x32; larger grids: float64, fewer sizes
        small = size == 32
        sims[size] = simulator_search(
            "symmetric", {"resolution": size, "steps": args.sim_steps},
            args.sim_batches if small else args.big_sim_batches,
            args.sim_precisions if small else [64])
    big = {}
    for size in [s for s in args.sizes if s != 32]:
        for name in sorted({r["model"] for r in runs}):
            big[(size, name)] = random_row(name, size, args)
    write(args, runs, sims, big, save_every)
    return 0


def random_row(name: str, size: int, args: argparse.Namespace) -> dict:
    """frames/s of a randomly initialised model of ``name`` at the regime map's width and
    ``T_in`` 1 on a ``size`` grid (speed does not depend on the weights)."""
    cfg = {"T_in": 1, "depth": 3}
    if surrogate.registry.needs_grid(name, {}):
        cfg["grid"] = [size, size]
    hidden = surrogate.width_for_params(name, 60_000, **cfg)
    net = surrogate.export(surrogate.build_model(name, hidden=hidden, **cfg).eval()).eval()
    best = 0.0
    with torch.inference_mode():
        for batch in args.batch:
            x = torch.randn(batch, 1, 3, size, size)
            net(x)
            for _ in range(args.reps):
                t0 = time.perf_counter()
                y = x
                for _ in range(args.frames):
                    y = net(y)[:, None]
                best = max(best, batch * args.frames / (time.perf_counter() - t0))
    return {"fps": best, "flops_per_frame": conv_flops(net, torch.zeros(1, 1, 3, size, size))}


def write(args, runs: list[dict], sims: dict, big: dict, save_every: dict) -> None:
    """``frontier.md`` and ``frontier.json`` in ``args.out``."""
    from frontier_report import markdown
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"date": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": machine_name(torch.device("cpu")), "threads": args.threads,
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "peak_flops": cpu_peak_flops(args.threads), "batch": args.batch,
            "frozen": args.frozen,
            "frames": args.frames, "sim_steps": args.sim_steps}
    data = {"meta": meta, "runs": [{**r, "ckpt": str(r["ckpt"])} for r in runs],
            "simulator": {str(k): v for k, v in sims.items()},
            "random": [{"size": s, "model": m, **v} for (s, m), v in big.items()],
            "save_every": save_every}
    write_json(args.out / "frontier.json", data)  # atomic: a kill leaves the old file
    (args.out / "frontier.md").write_text(markdown(data))
    print(f"wrote {args.out / 'frontier.md'}")


if __name__ == "__main__":
    sys.exit(main())
