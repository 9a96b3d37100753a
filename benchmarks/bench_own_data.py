"""A user's own dataset through the command lines.

Writes a dataset no preset makes: *diagonal* plumes (inflow near one of the four
corners, buoyancy pointing to the opposite corner, 6 magnitudes, radius 3), 24 runs at
32x32, 160 solver steps saved every 2, stored as a **bare** NetCDF that holds only
``u, v, density`` on ``(sim, time, y, x)`` and the coordinates (no cause fields, no
``heldout`` flag, no relaxflow attributes), as a user's own solver would. Then, with the
CLIs only, trains ``unet`` and ``gconv_unet`` (~60k parameters, T_in 4, K 3, 15 epochs x 24
steps, the default recipe; the two runs side by side, one core each) and evaluates
10-step rollouts on the held-out runs (``heldout = auto``: 30% of the runs, spread over
the sim axis) against persistence.

    python benchmarks/bench_own_data.py            # ~6 min on 2 cores

Writes ``benchmarks/results/own_data.md``; data, runs and report under ``--work``
(default ``benchmarks/work/own_data``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {"unet": 11, "gconv_unet": 5}  # hidden widths for ~60k parameters at depth 3


def make_data(work: Path) -> Path:
    import xarray as xr

    import simulate
    from simulate.spec import ScenarioSpec, SimSpec

    path = work / "diagonal.nc"
    if path.exists():
        return path
    sims = []
    corners = [(7, 7, 1, 1), (25, 7, -1, 1), (25, 25, -1, -1), (7, 25, 1, -1)]
    for j in range(6):
        b = 0.01 * (j + 1) / np.sqrt(2)
        for x, y, sx, sy in corners:
            sims.append(SimSpec(inflow_x=x, inflow_y=y, inflow_radius=3.0,
                                buoyancy=(sx * b, sy * b)))
    spec = ScenarioSpec(name="diagonal", sims=sims, resolution=32, steps=160, save_every=2)
    raw = work / "diagonal_raw.nc"
    simulate.generate(spec, raw, overwrite=True, progress=False)
    with xr.open_dataset(raw) as ds:
        bare = xr.Dataset(
            {v: (("sim", "time", "y", "x"), ds[v].values.astype("float32"))
             for v in ("u", "v", "density")},
            coords={"sim": np.arange(ds.sizes["sim"]), "time": ds["time"].values,
                    "y": ds["y"].values, "x": ds["x"].values})
    tmp = path.with_suffix(".tmp.nc")
    bare.to_netcdf(tmp)
    os.replace(tmp, path)
    raw.unlink()
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "work" / "own_data"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = make_data(work)
    py = sys.executable
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--data", str(data), "--T-in", "4", "--K", "3", "--depth", "3", "--epochs", "15",
              "--max-steps-per-epoch", "24", "--lr", "2e-3", "--patience", "none",
              "--device", "cpu", "--no-progress", "--overwrite", "--test-steps", "10"]
    procs = [subprocess.Popen([py, "-m", "train", *common, "--model", m, "--hidden", str(h),
                               "--out", str(work / "runs" / m)], cwd=ROOT, env=env)
             for m, h in MODELS.items()]
    if any(pr.wait() != 0 for pr in procs):
        print("bench_own_data: a training run failed", file=sys.stderr)
        return 1
    report = work / "report"
    if report.exists():
        import shutil
        shutil.rmtree(report)
    subprocess.run([py, "-m", "evaluate", "--checkpoint",
                    *[str(work / "runs" / m / "best.pt") for m in MODELS], "--data",
                    str(data), "--split", "test-domain", "--steps", "10", "--out",
                    str(report), "--no-gif", "--quiet"], cwd=ROOT, check=True)
    summary = json.loads((report / "summary.json").read_text())
    train_s = {m: sum(json.loads(l)["epoch_time_s"] for l in
                      (work / "runs" / m / "metrics.jsonl").read_text().splitlines())
               for m in MODELS}
    import torch
    from bench_models import machine_name
    cpu = machine_name(torch.device("cpu"))
    L = ["# A user's own dataset (diagonal plumes, bare NetCDF) through the CLIs", "",
         f"Measured by `benchmarks/bench_own_data.py` on {dt.date.today()} on {cpu} "
         f"({os.cpu_count()} cores; the two trainings side by side, one thread each), "
         f"torch {torch.__version__}; {time.time() - t0:.0f} s wall in all.", "",
         "24 diagonal plumes (no preset has a diagonal force), 32x32, 81 frames; held-out "
         "runs chosen by `heldout = auto`. 10-step rollouts on test-domain; ratios are "
         "RMSE / persistence RMSE on the same windows (velocity / all fields).", "",
         "| model | training s | velocity RMSE | vs persistence (velocity / all) | "
         "corr. time (steps) |", "|---|---|---|---|---|"]
    for m in summary["models"]:
        s = m["splits"]["test-domain"]
        if m.get("baseline"):
            L.append(f"| persistence | | {s['rmse_velocity']:.4f} | 1 | "
                     f"{s['corr_time_steps']:.1f} |")
            continue
        r = m["vs_persistence"]["test-domain"]
        L.append(f"| {m['label']} | {train_s[m['label']]:.0f} | {s['rmse_velocity']:.4f} | "
                 f"{r['rmse_velocity']:.2f}x / {r['rmse']:.2f}x | "
                 f"{s['corr_time_steps']:.1f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "own_data.md").write_text("\n".join(L) + "\n")
    print("\n".join(L))
    return 0


if __name__ == "__main__":
    sys.exit(main())
