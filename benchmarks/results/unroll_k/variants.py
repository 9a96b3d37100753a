"""Training-recipe variants of one model on one CPU-scale dataset, seed 0 (issue 11,
2026-12-03): how the unrolled loss steps K (and a few other knobs) move the ratio to
persistence, and (later that day) model variants: width, depth, cause inputs.
Reproduce from the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/results/unroll_k/variants.py \
        unet K3,K4,K6,K8,K10 boundary 2
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/results/unroll_k/variants.py \
        unet K6w2,K6w4,K6d4,K6cause boundary 2

Arguments: model, comma-separated variant names (below), scenario, parallel jobs. The
runs go to /tmp/unroll_k (datasets and checkpoints); each prints velocity / all-fields
RMSE over persistence's on the same 20-step windows, per test split.
"""
import concurrent.futures as cf
import dataclasses
import json
import multiprocessing as mp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # benchmarks/
WORK = "/tmp/unroll_k"


def main() -> None:
    from accuracy import cli, plan as P, run as R
    from surrogate import build_model, count_parameters, width_for_params
    model, names, sc = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
    jobs = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    args = cli.parse(["--scale", "cpu", "--studies", "main", "--scenarios", sc,
                      "--models", model, "--seeds", "1", "--work", WORK, "--out", WORK])
    pl = P.build_plan(P.resolve_settings(args))
    R.generate_data(pl.djobs[0], "cpu")
    base = pl.tasks[0]
    rec = base.train["recipe"]
    V = {"K3": {"K": 3}, "K4": {"K": 4}, "K6": {"K": 6}, "K8": {"K": 8},
         "K10": {"K": 10}, "K6e30": {"K": 6, "epochs": 30},
         "ema": {"K": 3, "recipe": {**rec, "ema": 0.99}},
         "lr8e-3": {"K": 3, "lr": 8e-3}, "noise1": {"K": 3, "recipe": {**rec, "noise": 1.0}},
         "b8x64": {"K": 3, "batch_size": 8, "max_steps_per_epoch": 64},
         "K6ema": {"K": 6, "recipe": {**rec, "ema": 0.99}},
         "curr": {"K": 6, "recipe": {**rec, "curriculum": True}},
         "K6dw3": {"K": 6, "recipe": {**rec, "loss_weights": {"density": 3.0}}},
         "K6dw1": {"K": 6, "recipe": {**rec, "loss_weights": {}}}}
    # model variants at K 6: (model_config overrides, target parameters)
    M = {"K6w2": ({}, 2 * P.SCALES["cpu"]["model"]["params"]),
         "K6w4": ({}, 4 * P.SCALES["cpu"]["model"]["params"]),
         "K6d4": ({"depth": 4}, P.SCALES["cpu"]["model"]["params"]),
         "K6cause": ({"breaking_inputs": ["cause"]}, P.SCALES["cpu"]["model"]["params"])}
    # (K6adv, {"advect": True}: the semi-Lagrangian density step of commit ace438b,
    # removed after it measured worse; README beside this file)
    tasks = []
    for n in names:
        t = dataclasses.replace(base, out=f"{WORK}/exp/{sc}_{model}_{n}")
        if n in M:
            extra, target = M[n]
            cfg = {k: v for k, v in {**base.model_config, **extra}.items() if k != "hidden"}
            cfg["hidden"] = width_for_params(model, target, T_in=base.train["T_in"], **cfg)
            t = dataclasses.replace(t, train={**base.train, "K": 6}, model_config=cfg,
                                    breaking_inputs=tuple(cfg.get("breaking_inputs", ())))
            print(n, "hidden", cfg["hidden"], "params",
                  count_parameters(build_model(model, T_in=base.train["T_in"], **cfg)),
                  flush=True)
        else:
            t = dataclasses.replace(t, train={**base.train, **V[n]})
        tasks.append(t)
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=R.init_worker,
                                initargs=(1,)) as pool:
        for n, t, r in zip(names, tasks, pool.map(R.run_task, tasks)):
            if "error" in r:
                print(n, r["error"], flush=True)
                continue
            pa, pv = R.persistence(base.data_path, f"{t.out}/best.pt", 20, 32)
            s = r["scores"]
            row = {sp: (round(s[sp]["rmse_velocity"] / pv[sp], 3),
                        round(s[sp]["rmse"] / pa[sp], 3)) for sp in pa}
            print(n, json.dumps(row), f"{r['seconds']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
