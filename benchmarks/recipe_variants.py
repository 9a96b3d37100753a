"""Training-recipe and model variants of one model on one CPU-scale dataset, seed 0: how the
unrolled loss steps K (and a few other knobs: EMA, lr, noise, batch, curriculum, density
weight) move the ratio to persistence, and model variants at K 6 (width, depth, cause
inputs). The committed tables are in ``benchmarks/results/unroll_k/README.md``; they came
from::

    OMP_NUM_THREADS=1 python benchmarks/recipe_variants.py unet K3,K4,K6,K8,K10 boundary 2
    OMP_NUM_THREADS=1 python benchmarks/recipe_variants.py unet K6w2,K6w4,K6d4,K6cause boundary 2

Arguments: model, comma-separated variant names (:data:`VARIANTS`, :data:`MODEL_VARIANTS`),
scenario, parallel jobs. Datasets and checkpoints go to ``--work`` (default
``benchmarks/work/recipe_variants``); each run prints its velocity / all-fields RMSE over
persistence's on the same 20-step windows, per test split.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

WORK = HERE / "work" / "recipe_variants"


def _recipe(**change: Any) -> dict[str, Any]:
    """A marker for a change to the scale's recipe (merged in :func:`train_overrides`)."""
    return {"recipe": change}


#: name -> changes to the scale's training settings (``recipe`` entries change the recipe)
VARIANTS: dict[str, dict[str, Any]] = {
    "K3": {"K": 3}, "K4": {"K": 4}, "K6": {"K": 6}, "K8": {"K": 8}, "K10": {"K": 10},
    "K6e30": {"K": 6, "epochs": 30},
    "ema": {"K": 3, **_recipe(ema=0.99)},
    "lr8e-3": {"K": 3, "lr": 8e-3},
    "noise1": {"K": 3, **_recipe(noise=1.0)},
    "b8x64": {"K": 3, "batch_size": 8, "max_steps_per_epoch": 64},
    "K6ema": {"K": 6, **_recipe(ema=0.99)},
    "curr": {"K": 6, **_recipe(curriculum=True)},
    "K6dw3": {"K": 6, **_recipe(loss_weights={"density": 3.0})},
    "K6dw1": {"K": 6, **_recipe(loss_weights={})},
}
#: name -> (model option changes, parameter target as a multiple of the scale's), at K 6.
#: (A semi-Lagrangian density step, measured worse and removed, was the variant
#: ``K6adv``; the README of the committed tables describes it.)
MODEL_VARIANTS: dict[str, tuple[dict[str, Any], int]] = {
    "K6w2": ({}, 2), "K6w4": ({}, 4), "K6d4": ({"depth": 4}, 1),
    "K6cause": ({"breaking_inputs": ["cause"]}, 1),
}


def train_overrides(base_train: dict[str, Any], name: str) -> dict[str, Any]:
    """The training settings of recipe variant ``name`` (the base's, changed)."""
    change = dict(VARIANTS[name])
    recipe = {**base_train["recipe"], **change.pop("recipe", {})}
    return {**base_train, **change, "recipe": recipe}


def base_task(model: str, scenario: str, work: Path):
    """The CPU scale's main-study plan for ``model`` on ``scenario``, seed 0, and its one
    run (the base every variant changes)."""
    from accuracy import cli, plan as P
    args = cli.parse(["--scale", "cpu", "--studies", "main", "--scenarios", scenario,
                      "--models", model, "--seeds", "1", "--work", str(work),
                      "--out", str(work)])
    pl = P.build_plan(P.resolve_settings(args))
    return pl, pl.tasks[0]


def variant_task(base, name: str, work: Path):
    """The run of variant ``name``: a recipe variant, or a model variant at K 6 with its
    width chosen for its parameter target."""
    from accuracy import plan as P
    from surrogate import build_model, count_parameters, width_for_params
    t = dataclasses.replace(base, out=str(work / "exp" / f"{base.data_key}_{base.model}_{name}"))
    if name not in MODEL_VARIANTS:
        return dataclasses.replace(t, train=train_overrides(base.train, name))
    extra, times = MODEL_VARIANTS[name]
    cfg = {k: v for k, v in {**base.model_config, **extra}.items() if k != "hidden"}
    target = times * P.SCALES["cpu"]["model"]["params"]
    T_in = base.train["T_in"]
    cfg["hidden"] = width_for_params(base.model, target, T_in=T_in, **cfg)
    params = count_parameters(build_model(base.model, T_in=T_in, **cfg))
    return dataclasses.replace(t, train={**base.train, "K": 6}, model_config=cfg,
                               hidden=cfg["hidden"], params=params,
                               breaking_inputs=tuple(cfg.get("breaking_inputs", ())))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: model, variant names, scenario, jobs, ``--work``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("variants", type=lambda s: s.split(","),
                   help="comma-separated: " + ",".join([*VARIANTS, *MODEL_VARIANTS]))
    p.add_argument("scenario")
    p.add_argument("jobs", type=int, nargs="?", default=2)
    p.add_argument("--work", type=Path, default=WORK)
    args = p.parse_args(argv)
    unknown = [n for n in args.variants if n not in VARIANTS and n not in MODEL_VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Train every variant (``jobs`` at a time) and print its ratios to persistence."""
    import concurrent.futures as cf
    import json
    import multiprocessing as mp

    from accuracy import run as R
    args = parse(argv)
    pl, base = base_task(args.model, args.scenario, args.work)
    R.generate_data(pl.djobs[0], "cpu")
    tasks = [variant_task(base, n, args.work) for n in args.variants]
    for n, t in zip(args.variants, tasks):
        if n in MODEL_VARIANTS:
            print(n, "hidden", t.hidden, "params", t.params, flush=True)
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=R.init_worker,
                                initargs=(1,)) as pool:
        for n, t, r in zip(args.variants, tasks, pool.map(R.run_task, tasks)):
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
