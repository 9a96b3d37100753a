"""The density bound (``TrainConfig.nonnegative``) against the CPU scale's recipe, on one
CPU-scale dataset, several models and seeds (issue 11, 2026-12-05). Reproduce from the
repository root:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/results/nonnegative/variants.py \\
        boundary unet,steer_unet 0,1,2 2

Arguments: scenario, comma-separated models, comma-separated seeds, parallel jobs. The
CPU scale's own runs (without the bound) are planned as ``bench_accuracy.py`` plans them
(so its cache, ``--work``, is reused when it holds them); the bounded runs go beside
them. Each run prints velocity / all-fields / density RMSE over persistence's on the
same 20-step windows (at most 32 per split), per test split.
"""
import concurrent.futures as cf
import dataclasses
import json
import multiprocessing as mp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # benchmarks/
WORK = "/tmp/bwork"


def ratios(data: str, ck: str) -> dict:
    import numpy as np
    import torch
    import evaluate
    from evaluate import metrics as M
    from evaluate.rollout import iter_batches
    from surrogate import load, read_checkpoint
    meta = read_checkpoint(ck)["metadata"]
    ch = list(meta["channels"])
    groups = {"vel": [ch.index("u"), ch.index("v")], "all": None,
              "density": [ch.index("density")]}
    ds, model = evaluate.open_data([data]), load(ck)
    out = {}
    for split in ("test-future", "test-domain"):
        w = evaluate.build_windows(meta, split, ds, int(meta["T_in"]), 20, max_windows=32)
        se = {k: [] for k in groups}
        sp = {k: [] for k in groups}
        for _, hist, targ in iter_batches(ds, w, ch, 64):
            pred = model.rollout(torch.from_numpy(hist), 20).numpy()
            per = np.repeat(hist[:, -1:], 20, axis=1)
            for k, idx in groups.items():
                se[k].append(M.rmse_rollout(pred, targ, idx))
                sp[k].append(M.rmse_rollout(per, targ, idx))
        out[split] = {k: round(float(np.concatenate(se[k]).mean()
                                     / np.concatenate(sp[k]).mean()), 3) for k in groups}
    ds.close()
    return out


def main() -> None:
    from accuracy import cli, plan as P, run as R
    sc, models = sys.argv[1], sys.argv[2].split(",")
    seeds = [int(s) for s in sys.argv[3].split(",")]
    jobs = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    args = cli.parse(["--scale", "cpu", "--studies", "main", "--scenarios", sc,
                      "--models", *models, "--seed-list", *map(str, seeds),
                      "--work", WORK, "--out", WORK])
    pl = P.build_plan(P.resolve_settings(args))
    R.generate_data(pl.djobs[0], "cpu")
    tasks, names = [], []
    for base in pl.tasks:
        rec = {**base.train["recipe"], "nonnegative": True}
        tasks += [base, dataclasses.replace(base, out=base.out + "_nonneg",
                                            train={**base.train, "recipe": rec})]
        names += [f"{base.model} seed {base.seed}", f"{base.model} seed {base.seed} bound"]
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=R.init_worker,
                                initargs=(1,)) as pool:
        for n, t, r in zip(names, tasks, pool.map(R.run_task, tasks)):
            if "error" in r:
                print(n, r["error"], flush=True)
                continue
            print(n, json.dumps(ratios(t.data_path, f"{t.out}/best.pt")),
                  f"{r['seconds']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
