"""Part 3: what the paper-scale accuracy benchmark would cost on this device, measured.

The plan of ``benchmarks/bench_accuracy.py --scale paper`` (its default studies: main,
sweep, inputs; 3 seeds) gives every run's optimiser steps (train windows per epoch /
batch x epochs, the train split resolved from the scenario specs, as ``train_flop``
counts them) and its models at their planned widths (~5.6M parameters). Each model is
built as planned and trained with ``train.objective.train_step`` (the K-step rollout, the
recipe's noise and loss weights, AdamW) on a random batch already on the device, and
timed per step; the projection is the plan's steps x the measured seconds per step,
summed over runs. Data loading, validation and the test rollouts are left out (as in
``train_flop``), early stopping (patience 10) can only shorten it."""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections import Counter
from typing import Any

import torch

from .record import Check, Context, Skip, first_line, peak_memory_gib, sync
from .sizes import PROBE_MODELS

PART = "3"
README_HOURS = 9.0       # the README's projection: 3.2e18 FLOP at a sustained 100 TFLOP/s
MIN_CAP_S = 3.0          # each model gets at least this long, however late


def run(ctx: Context) -> None:
    """The plan, the timed steps per precision, then the projection."""
    res_part: dict[str, Any] = {"plan": None, "probe": {}, "projection": {}}
    ctx.rec.parts[PART] = res_part
    planned = ctx.rec.run(PART, "paper-scale plan: steps and FLOP",
                          lambda c: plan_steps(ctx, res_part, c))
    amps = ctx.settings["probe"]["amps"]
    for i, amp in enumerate(amps):
        ctx.rec.run(PART, f"paper-scale optimiser steps, amp {amp}",
                    lambda c, amp=amp, i=i: probe(ctx, planned, amp, len(amps) - i,
                                                  res_part, c))
    ctx.rec.run(PART, "projection of the paper-scale benchmark",
                lambda c: projection(ctx, res_part, c))


def paper_settings(ctx: Context, models: list[str]):
    """``SCALES["paper"]`` resolved as ``bench_accuracy.py --scale paper --dry-run``
    would (for ``models``), with the size's overrides (tiny models at tiny sizes)."""
    from accuracy.plan import resolve_settings
    work = ctx.work / "paper_plan"  # named only: a dry-run plan writes nothing
    ns = argparse.Namespace(scale="paper", params=None, epochs=None, work=str(work),
                            out=str(work), studies=None, scenarios=None, models=models,
                            seed_list=None, seeds=None, jobs=None, threads=1, device=None,
                            dry_run=True, rows=None)
    st = resolve_settings(ns)
    for key, over in ctx.settings["probe"]["scale_overrides"].items():
        st.scale[key].update(over)
    return st


def plan_steps(ctx: Context, res_part: dict[str, Any], c: Check) -> tuple:
    """Optimiser steps per model over the plan's runs, its training FLOP, and one run
    per model (no breaking inputs, no variant) to build the timed model from. Without
    escnn the steerable models are left out of the plan (and the check is partial)."""
    from accuracy.plan import MODELS, build_plan, train_flop, train_samples_per_epoch
    left_out, why = [], ""
    try:
        import escnn  # noqa: F401 - the steerable models need it
    except Exception as e:  # noqa: BLE001 - recorded
        left_out, why = [m for m in MODELS if "steer" in m], first_line(e)
    st = paper_settings(ctx, [m for m in MODELS if m not in left_out])
    plan = build_plan(st)
    tr = st.scale["train"]
    per_epoch = {d.key: math.ceil(train_samples_per_epoch(st.scale, d) / tr["batch_size"])
                 for d in plan.djobs}
    steps: Counter = Counter()
    for t in plan.tasks:
        steps[t.model] += per_epoch[t.data_key] * tr["epochs"]
    reps = {}
    for t in plan.tasks:
        if not t.breaking_inputs and not t.variant:
            reps.setdefault(t.model, t)
    flop = train_flop(st.scale, plan.tasks, plan.djobs)
    flop_step = {m: train_flop(st.scale, [t], plan.djobs)
                 / (per_epoch[t.data_key] * tr["epochs"]) for m, t in reps.items()}
    d = {"runs": len(plan.tasks), "studies": st.studies, "seeds": st.seeds,
         "left_out": left_out,
         "steps_by_model": dict(steps), "total_steps": sum(steps.values()),
         "train_flop": flop, "flop_per_step": flop_step,
         "hours_at_100_tflops": flop / 100e12 / 3600,
         "widths": {m: {"hidden": t.hidden, "params": t.params} for m, t in reps.items()},
         "scale": {"resolution": st.scale["data"]["resolution"], **{k: tr[k] for k in (
             "T_in", "K", "batch_size", "epochs")}, "params": st.scale["model"]["params"],
                   "depth": st.scale["model"]["depth"]}}
    res_part["plan"] = c.details = d
    c.result = (f"{d['runs']} runs, {d['total_steps']:,} optimiser steps, "
                f"{flop:.2e} training FLOP ({d['hours_at_100_tflops']:.2f} h at 100 TFLOP/s)")
    if left_out:
        c.status, c.error = "partial", f"{', '.join(left_out)} left out of the plan: {why}"
    return st, reps


def _inputs(model: torch.nn.Module, tr: dict, batch: int, res: int, dev: torch.device):
    """A random batch, the recipe's noise std and loss weights, on ``dev``."""
    from train.objective import field_weights
    ch = model.layout.num_channels
    x = torch.randn(batch, tr["T_in"], ch, res, res, device=dev)
    y = torch.randn(batch, tr["K"], ch, res, res, device=dev)
    recipe = tr.get("recipe", {})
    noise = torch.full((ch,), 0.1 * float(recipe.get("noise", 0.0)), device=dev)
    weight = field_weights(recipe.get("loss_weights", {}), model.layout).to(dev)
    return x, y, noise, weight


def time_steps(ctx: Context, t: Any, tr: dict, batch: int, res: int, amp: str,
               cap_s: float) -> dict[str, Any]:
    """Warm-up, then optimiser steps until ``steps`` or ``cap_s`` seconds, each timed
    (``train_step`` waits for the device when it checks the loss)."""
    from surrogate import build_model, count_parameters
    from train.objective import Rollout, train_step
    p, dev = ctx.settings["probe"], torch.device(ctx.device)
    torch.manual_seed(0)
    model = build_model(t.model, T_in=tr["T_in"], **t.model_config).to(dev)
    rollout = Rollout(model)
    opt = torch.optim.AdamW(model.parameters(), lr=tr["lr"])
    x, y, noise, weight = _inputs(model, tr, batch, res, dev)

    def step() -> None:
        loss, _, norm = train_step(rollout, model, opt, x, y, amp=amp, noise=noise,
                                   weight=weight, grad_clip=1.0)
        if not torch.isfinite(loss):
            raise RuntimeError(f"{t.model}: non-finite loss")

    for _ in range(p["warmup"]):
        step()
    sync(ctx.device)
    if ctx.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times: list[float] = []
    t0 = time.perf_counter()
    while len(times) < p["steps"] and (not times or time.perf_counter() - t0 < cap_s):
        s0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - s0)
    sync(ctx.device)
    total = time.perf_counter() - t0
    return {"model": t.model, "hidden": t.model_config.get("hidden"),
            "params": count_parameters(model), "steps": len(times),
            "s_per_step": total / len(times), "median_step_s": statistics.median(times),
            "samples_per_s": batch * len(times) / total, "peak_gib": peak_memory_gib(ctx.device)}


def probe(ctx: Context, planned: tuple | None, amp: str, passes_left: int,
          res_part: dict[str, Any], c: Check) -> None:
    """Time every planned model in ``amp``; the part's time left is shared out over the
    models (and precisions) still to come, at least ``MIN_CAP_S`` each."""
    if planned is None:
        raise Skip("no plan: the plan check failed")
    st, reps = planned
    tr, p = st.scale["train"], ctx.settings["probe"]
    batch, res = p["batch"] or tr["batch_size"], st.scale["data"]["resolution"]
    models = [m for m in PROBE_MODELS if m in reps]
    rows, errors = {}, {}
    for i, m in enumerate(models):
        left = ctx.budget.left(PART)
        cap = max(MIN_CAP_S, left / ((len(models) - i) + len(models) * (passes_left - 1)))
        try:
            rows[m] = time_steps(ctx, reps[m], tr, batch, res, amp, cap)
            ctx.rec.log(f"   {m}: {rows[m]['steps']} steps, {rows[m]['s_per_step'] * 1e3:.1f}"
                        f" ms/step, {rows[m]['params']:,} parameters")
        except Exception as e:  # noqa: BLE001 - recorded, the next model goes on
            errors[m] = first_line(e)
            ctx.rec.log(f"   {m}: {errors[m]}")
        if ctx.device == "cuda":
            torch.cuda.empty_cache()
        res_part["probe"][amp] = {"batch": batch, "resolution": res, "rows": rows,
                                  "errors": errors}
        ctx.rec.save()
    c.details = {"batch": batch, "rows": rows, "errors": errors}
    c.result = ", ".join(f"{m} {r['s_per_step'] * 1e3:.1f} ms" for m, r in rows.items())
    c.result += f" per step (batch {batch}, {res}x{res}, {sum(r['steps'] for r in rows.values())}"
    c.result += " timed steps)"
    if errors:
        m = next(iter(errors))
        raise RuntimeError(f"{len(errors)} of {len(models)} models failed, {m}: {errors[m]}")


def projection(ctx: Context, res_part: dict[str, Any], c: Check) -> None:
    """GPU-hours of the plan per precision: sum over models of planned steps x measured
    seconds per step; the sustained TFLOP/s that implies."""
    plan = res_part["plan"]
    if plan is None or not res_part["probe"]:
        raise Skip("no plan or no timed steps")
    out, missing = {}, {}
    for amp, pr in res_part["probe"].items():
        have = {m: n for m, n in plan["steps_by_model"].items() if m in pr["rows"]}
        missing[amp] = sorted(set(plan["steps_by_model"]) - set(have))
        secs = sum(n * pr["rows"][m]["s_per_step"] for m, n in have.items())
        flop = plan["train_flop"] * sum(have.values()) / plan["total_steps"]  # about
        out[amp] = {"gpu_hours": secs / 3600, "tflops": flop / max(secs, 1e-9) / 1e12,
                    "vs_readme": secs / 3600 / README_HOURS, "missing": missing[amp]}
    res_part["projection"] = c.details = out
    tiny = "tiny models (not a projection): " if ctx.settings["probe"]["scale_overrides"] \
        else ""
    c.result = tiny + "; ".join(f"{'fp32' if a == 'none' else a}: {v['gpu_hours']:.3g} "
                                f"device-hours ({v['tflops']:.3g} TFLOP/s sustained)"
                                for a, v in out.items())
    c.result += f" vs the README's {README_HOURS:g} h at 100 TFLOP/s"
    if any(missing.values()):
        raise RuntimeError(f"incomplete, no timing for {missing} (their steps are left out): "
                           + c.result)
    if plan["left_out"]:
        c.status = "partial"
        c.error = f"the plan's runs of {', '.join(plan['left_out'])} are not counted"
