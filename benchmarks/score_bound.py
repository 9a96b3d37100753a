"""Score checkpoints of one model (its seeds) on a CPU-scale dataset without and with the
forecast's lower bound (density >= 0, applied to every frame a forecast returns), one by
one and as the ensemble of their forecasts (the per-step mean of the members' own
rollouts), against persistence on the same windows. Run from the repository root, on runs
of ``bench_accuracy.py --scale cpu`` (``WORK`` is its ``--work`` folder)::

    OMP_NUM_THREADS=1 python benchmarks/score_bound.py \\
        WORK/data/boundary.nc WORK/runs/boundary/steer_unet/seed{0,1,2}/best.pt

Prints one line per split and forecast: velocity / all fields / density RMSE over
persistence's (20 steps, at most 32 windows per split, the benchmark's windows). The
committed output is in ``benchmarks/results/nonnegative/README.md``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS, MAX_WINDOWS = 20, 32


def density_bound(channels: list[str] | tuple[str, ...]) -> tuple[float, ...]:
    """The bound training records for the benchmark's data: 0 for density, none (-inf)
    for every other channel."""
    return tuple(0.0 if c == "density" else -math.inf for c in channels)


def with_bound(model, bound: tuple[float, ...] | None):
    """``model`` with its normalisation's lower bound replaced by ``bound`` (None: no
    bound, whatever the checkpoint recorded)."""
    model.normalization = dataclasses.replace(model.normalization, lower_bound=bound)
    return model


def ratio_line(split: str, name: str, errors: dict[str, float],
               base: dict[str, float]) -> str:
    """One printed line: each group's RMSE over persistence's, to 3 decimals."""
    return f"{split} {name:24s} " + " / ".join(f"{errors[g] / base[g]:.3f}" for g in base)


def main(argv: list[str] | None = None) -> None:
    """Score the checkpoints given after the dataset; print the ratio lines."""
    import numpy as np
    import torch

    import evaluate
    from evaluate import metrics as M
    from evaluate.rollout import iter_batches
    from surrogate import load

    args = sys.argv[1:] if argv is None else argv
    data, paths = args[0], args[1:]
    torch.set_num_threads(1)
    free = [with_bound(load(p), None) for p in paths]
    bounded = [with_bound(load(p), density_bound(m.layout.channels)) for p, m in
               zip(paths, free)]
    ch = list(free[0].layout.channels)
    groups = {"velocity": [ch.index("u"), ch.index("v")], "all": None,
              "density": [ch.index("density")]}
    ds = evaluate.open_data([data])
    for split in ("test-future", "test-domain"):
        w = evaluate.build_windows(free[0].record, split, ds, free[0].T_in, STEPS,
                                   max_windows=MAX_WINDOWS)
        err: dict[str, dict[str, list]] = {}
        for _, hist, targ in iter_batches(ds, w, ch, 64):
            h = torch.from_numpy(hist)
            runs = {"persistence": np.repeat(hist[:, -1:], STEPS, axis=1)}
            for tag, ms in (("", free), (" bounded", bounded)):
                preds = [m.rollout(h, STEPS).numpy() for m in ms]
                runs.update({f"seed {i}{tag}": p for i, p in enumerate(preds)})
                runs[f"ensemble of {len(ms)}{tag}"] = np.mean(preds, axis=0)
            for name, p in runs.items():
                for g, idx in groups.items():
                    err.setdefault(name, {}).setdefault(g, []).append(
                        M.rmse_rollout(p, targ, idx))
        mean = {n: {g: float(np.concatenate(v).mean()) for g, v in e.items()}
                for n, e in err.items()}
        for name, e in mean.items():
            if name != "persistence":
                print(ratio_line(split, name, e, mean["persistence"]), flush=True)
    ds.close()


if __name__ == "__main__":
    main()
