"""Score checkpoints of one model (its seeds) on a CPU-scale dataset with and without the
forecast's lower bound (density >= 0, fed back bounded at every step), one by one and as
the ensemble of their forecasts (the per-step mean of the members' own rollouts), against
persistence on the same windows (issue 11, 2026-12-05). Reproduce from the repository
root, on runs of ``bench_accuracy.py --scale cpu`` (trained before the bound existed):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/results/nonnegative/score.py \\
        WORK/data/boundary.nc WORK/runs/boundary/steer_unet/seed{0,1,2}/best.pt

Prints one line per split and forecast: velocity / all fields / density RMSE over
persistence's (20 steps, at most 32 windows per split, the benchmark's windows).
"""
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import evaluate  # noqa: E402
from evaluate import metrics as M  # noqa: E402
from evaluate.rollout import iter_batches  # noqa: E402
from surrogate import load  # noqa: E402


def main() -> None:
    data, paths = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    free = [load(p) for p in paths]
    bounded = [load(p) for p in paths]
    for m in bounded:  # the bound training now records: density >= 0
        lay = m.normalization.layout
        b = tuple(0.0 if c == "density" else -math.inf for c in lay.channels)
        object.__setattr__(m.normalization, "lower_bound", b)
    ch = list(free[0].layout.channels)
    groups = {"velocity": [ch.index("u"), ch.index("v")], "all": None,
              "density": [ch.index("density")]}
    ds = evaluate.open_data([data])
    for split in ("test-future", "test-domain"):
        w = evaluate.build_windows(free[0].record, split, ds, free[0].T_in, 20,
                                   max_windows=32)
        err: dict[str, dict[str, list]] = {}
        for _, hist, targ in iter_batches(ds, w, ch, 64):
            h = torch.from_numpy(hist)
            runs = {"persistence": np.repeat(hist[:, -1:], 20, axis=1)}
            for tag, ms in (("", free), (" bounded", bounded)):
                preds = [m.rollout(h, 20).numpy() for m in ms]
                runs.update({f"seed {i}{tag}": p for i, p in enumerate(preds)})
                runs[f"ensemble of {len(ms)}{tag}"] = np.mean(preds, axis=0)
            for name, p in runs.items():
                for g, idx in groups.items():
                    err.setdefault(name, {}).setdefault(g, []).append(
                        M.rmse_rollout(p, targ, idx))
        base = {g: np.concatenate(v).mean() for g, v in err["persistence"].items()}
        for name, e in err.items():
            if name != "persistence":
                print(split, f"{name:24s}", " / ".join(
                    f"{np.concatenate(e[g]).mean() / base[g]:.3f}" for g in groups),
                    flush=True)
    ds.close()


if __name__ == "__main__":
    main()
