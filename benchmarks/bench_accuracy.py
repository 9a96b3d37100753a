"""Accuracy benchmark: the paper's claim, measured (issue 6 "Results table", issue 7
"Benchmark").

Three studies by default and an ablation on request, every model at (about) the same
parameter count (the ablation varies it on purpose), several seeds, 20-step
autoregressive rollouts scored on test-future (later times of the training simulations)
and test-domain (held-out simulations) with the splits recorded in each checkpoint:

* ``main``   - the five models (``unet``, ``gconv_unet``, ``relaxed_gconv_unet``,
  ``steer_unet``, ``relaxed_steer_unet``) on ``rotation``, ``translation``, ``boundary``
  and the ``symmetric`` control;
* ``sweep``  - plain vs strict vs relaxed (``unet``, ``gconv_unet``,
  ``relaxed_gconv_unet``) on ``breaking_sweep`` datasets, one per breaking level (a plot);
* ``inputs`` - breaking symmetry by inputs (issue 7) on ``rotation`` and ``boundary``:
  strict, relaxed, strict+cause, strict+frame, relaxed+cause, plain+coords (the
  group-conv family; strict = ``gconv_unet``, relaxed = ``relaxed_gconv_unet``);
* ``ablation`` - why the relaxed models are or are not ahead, on ``rotation`` and the
  ``symmetric`` control: strict, relaxed group conv with L = 2 banks (the default) and
  L = 1 at equal parameters, relaxed L = 2 at the strict model's width (more
  parameters), the relaxed steerable net with a faster relaxation (``relax_scale`` 1
  vs the default 0.1) or a stronger equivariance penalty (alpha 1e-1 vs 1e-5), at equal
  parameters and at the strict steerable width, with how far the learned relaxation
  weights moved from equivariance on each dataset.

A persistence forecast (the last given frame repeated) is scored on the same windows as
a floor every model should beat.

Two scales::

    python benchmarks/bench_accuracy.py --scale cpu              # ~45 min on 2 CPU cores
    python benchmarks/bench_accuracy.py --scale cpu --studies main sweep inputs ablation
    python benchmarks/bench_accuracy.py --scale paper --device cuda --jobs 2   # a GPU
    python benchmarks/bench_accuracy.py --scale paper --dry-run  # print the plan only
    python benchmarks/bench_accuracy.py --scale smoke            # 1 seed, rotation, tiny

Options: ``--scenarios``, ``--models``, ``--studies``, ``--seeds N`` (seeds 0..N-1),
``--jobs`` (parallel training processes, one torch thread each by default), ``--out``
(results folder), ``--work`` (datasets and runs). Generated datasets and finished runs
are cached under ``--work`` (default ``benchmarks/work/<scale>``): a finished run's
``result.json`` is reused when its settings match, an interrupted run resumes from its
``last.pt``, so re-running the command continues an interrupted benchmark.

Writes ``accuracy_<scale>.md`` (tables, settings, machine, wall time),
``accuracy_<scale>.csv`` (one row per run), ``accuracy_<scale>.json`` (everything) and
``accuracy_sweep_<scale>.png`` to ``--out`` (default ``benchmarks/results``; the smoke
scale writes under its work folder).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

MODELS = ["unet", "gconv_unet", "relaxed_gconv_unet", "steer_unet", "relaxed_steer_unet"]
SCENARIOS = ["rotation", "translation", "boundary", "symmetric"]
STUDIES = ["main", "sweep", "inputs", "ablation"]
DEFAULT_STUDIES = ["main", "sweep", "inputs"]  # ablation on request (--studies ... ablation)
SPLITS = ["test-future", "test-domain"]
SWEEP_MODELS = ["unet", "gconv_unet", "relaxed_gconv_unet"]
INPUT_SCENARIOS = ["rotation", "boundary"]
# issue 7: (label, model, breaking_inputs)
INPUT_VARIANTS = [
    ("strict", "gconv_unet", ()),
    ("relaxed", "relaxed_gconv_unet", ()),
    ("strict+cause", "gconv_unet", ("cause",)),
    ("strict+frame", "gconv_unet", ("frame",)),
    ("relaxed+cause", "relaxed_gconv_unet", ("cause",)),
    ("plain+coords", "unet", ("coords",)),
]
# why relaxed is (not) ahead: (label, model, model_config overrides, width taken from)
ABLATION_SCENARIOS = ["rotation", "symmetric"]
ABLATION_VARIANTS = [
    ("strict", "gconv_unet", {}, None),
    ("relaxed L=2", "relaxed_gconv_unet", {}, None),
    ("relaxed L=1", "relaxed_gconv_unet", {"num_banks": 1}, None),
    ("relaxed L=2 @ strict width", "relaxed_gconv_unet", {}, "gconv_unet"),
    ("strict steerable", "steer_unet", {}, None),
    ("relaxed steerable (relax_scale 0.1)", "relaxed_steer_unet", {}, None),
    ("relaxed steerable, relax_scale 1", "relaxed_steer_unet", {"relax_scale": 1.0}, None),
    ("relaxed steerable, alpha 1e-1", "relaxed_steer_unet", {"alpha": 1e-1}, None),
    ("relaxed steerable @ strict width", "relaxed_steer_unet", {}, "steer_unet"),
    ("relaxed steerable @ strict width, relax_scale 1", "relaxed_steer_unet",
     {"relax_scale": 1.0}, "steer_unet"),
]
STRICT_OF = {"relaxed_gconv_unet": "gconv_unet", "relaxed_steer_unet": "steer_unet"}
# rough relative cost of one training step (for scheduling the longest runs first)
COST = {"unet": 1.0, "gconv_unet": 2.3, "relaxed_gconv_unet": 1.8, "steer_unet": 3.5,
        "relaxed_steer_unet": 1.0}

# --------------------------------------------------------------------------------------
# Scales
# --------------------------------------------------------------------------------------
#: the training recipe of issue 11 (docs/accuracy.md, "Training recipe"); part of every
#: run's cache key, so results of an older recipe are never reused
RECIPE = {"targets": "delta", "persistence_init": True, "noise": 0.5, "schedule": "cosine"}

SCALES: dict[str, dict[str, Any]] = {
    # 2 CPU cores, <= 60 min including data generation
    "cpu": {
        "data": {"resolution": 32, "steps": 160, "save_every": 2},
        "scenario_params": {
            "rotation": {"n_magnitudes": 3},                   # 12 runs, 3 held out
            "translation": {"nx": 4, "ny": 3},                 # 12 runs, 3 held out
            "boundary": {"n_inflows": 4, "n_magnitudes": 3},   # 12 runs, 3 held out
            "symmetric": {"n_magnitudes": 3},                  # 12 runs, 3 held out
        },
        "sweep": {"levels": [0.0, 0.5, 1.0], "n_magnitudes": 3, "asymmetry": 3.0},
        "model": {"depth": 3, "params": 104_000},
        # small batches learn far more per CPU-second here than batch 8-16 (measured)
        "train": {"recipe": RECIPE, "T_in": 4, "K": 2, "batch_size": 4, "epochs": 12, "max_steps_per_epoch": 50,
                  "lr": 2e-3, "lr_decay": 0.9, "patience": None, "valid_stride": 2,
                  "valid_steps": 4, "split_preset": "auto"},
        "eval": {"steps": 20, "max_windows": 32, "batch_size": 32},
        "seeds": 3, "jobs": 2, "device": "cpu",
    },
    # the paper's sizes (Wang et al. 2022; shared/REFERENCE.md), meant for a CUDA GPU
    "paper": {
        "data": {"resolution": 64, "steps": 310, "save_every": 1},
        "scenario_params": {"rotation": {}, "translation": {}, "boundary": {},
                            "symmetric": {}},                  # preset (paper) sizes
        "sweep": {"levels": [0.0, 0.25, 0.5, 0.75, 1.0], "n_magnitudes": 2,
                  "asymmetry": 3.0},
        # the reference relaxed steerable C4 net: hidden 92 fields, ~5.6 M parameters
        "model": {"depth": 4, "params": 5_600_000},
        "train": {"recipe": RECIPE, "T_in": 10, "K": 6, "batch_size": 16, "epochs": 50,
                  "max_steps_per_epoch": None, "lr": 1e-3, "lr_decay": 0.95, "patience": 10,
                  "valid_stride": 1, "valid_steps": None, "split_preset": "paper"},
        "eval": {"steps": 20, "max_windows": None, "batch_size": 64},
        "seeds": 3, "jobs": 1, "device": "cuda",
    },
    # a pipeline check: one seed, one scenario, tiny everything (a few minutes)
    "smoke": {
        "data": {"resolution": 32, "steps": 100, "save_every": 2},
        "scenario_params": {"rotation": {"n_magnitudes": 2}, "translation": {"nx": 3, "ny": 2},
                            "boundary": {"n_inflows": 2, "n_magnitudes": 2},
                            "symmetric": {"n_magnitudes": 2}},
        "sweep": {"levels": [0.0, 1.0], "n_magnitudes": 2, "asymmetry": 3.0},
        "model": {"depth": 3, "params": 20_000},
        "train": {"recipe": RECIPE, "T_in": 4, "K": 2, "batch_size": 8, "epochs": 2, "max_steps_per_epoch": 4,
                  "lr": 2e-3, "lr_decay": 0.9, "patience": None, "valid_stride": 4,
                  "valid_steps": None, "split_preset": "auto"},
        "eval": {"steps": 20, "max_windows": 8, "batch_size": 32},
        "seeds": 1, "jobs": 2, "device": "cpu", "scenarios": ["rotation"],
        "studies": ["main", "inputs"],
    },
}


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def _hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class DataJob:
    key: str            # "rotation" or "breaking_sweep@0.5"
    scenario: str       # preset name
    params: dict
    path: str
    level: float | None = None


@dataclasses.dataclass
class RunTask:
    study: str          # "main" | "sweep" | "inputs" (a run may serve several)
    data_key: str
    label: str          # row label: model name or issue-7 variant
    model: str
    breaking_inputs: tuple
    seed: int
    hidden: int
    params: int
    out: str
    data_path: str
    train: dict
    eval: dict
    model_config: dict
    device: str
    threads: int
    variant: str = ""   # ablation label ("" for the plain model of its name)

    @property
    def cost(self) -> float:
        return COST.get(self.model, 1.0) * (1.2 if self.breaking_inputs else 1.0)

    def key(self) -> str:
        d = dataclasses.asdict(self)
        for k in ("study", "label", "threads", "params", "device", "variant"):
            d.pop(k)
        return _hash(d)


def data_jobs(scale: dict, scenarios: list[str], studies: list[str], work: Path
              ) -> list[DataJob]:
    jobs: dict[str, DataJob] = {}
    base = dict(scale["data"])
    need = set(scenarios) if "main" in studies else set()
    if "inputs" in studies:
        need |= set(INPUT_SCENARIOS)
    if "ablation" in studies:
        need |= set(ABLATION_SCENARIOS)
    for sc in [s for s in SCENARIOS if s in need]:
        p = {**base, **scale["scenario_params"].get(sc, {})}
        jobs[sc] = DataJob(sc, sc, p, str(work / "data" / f"{sc}.nc"))
    if "sweep" in studies:
        sw = scale["sweep"]
        for lv in sw["levels"]:
            p = {**base, "levels": (float(lv),), "n_magnitudes": sw["n_magnitudes"],
                 "asymmetry": sw["asymmetry"]}
            k = f"breaking_sweep@{float(lv):g}"
            jobs[k] = DataJob(k, "breaking_sweep", p,
                              str(work / "data" / f"breaking_sweep_level{float(lv):g}.nc"),
                              float(lv))
    return list(jobs.values())


def breaking_support() -> tuple[bool, str]:
    """Whether ``build_model`` takes ``breaking_inputs`` (issue 7) in this checkout."""
    try:
        from surrogate import build_model
        for name in ("frame", "cause", "coords"):
            build_model("gconv_unet", hidden=1, T_in=2, depth=2, breaking_inputs=[name])
        build_model("unet", hidden=1, T_in=2, depth=2, breaking_inputs=["coords"])
        return True, ""
    except Exception as e:  # noqa: BLE001 - any failure means "not usable yet"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return False, f"build_model(..., breaking_inputs=...) is not available: {msg}"


_WIDTHS: dict[tuple, tuple[int, int]] = {}


def width(model: str, scale: dict, breaking: tuple, extra: dict | None = None,
          hidden: int | None = None) -> tuple[int, int]:
    """(hidden, parameters) of ``model`` with options ``extra``: at the scale's parameter
    target, or at ``hidden`` when given."""
    from surrogate import build_model, count_parameters, width_for_params
    extra = dict(extra or {})
    key = (model, breaking, tuple(sorted(extra.items())), hidden, scale["model"]["params"],
           scale["model"]["depth"], scale["train"]["T_in"])
    if key not in _WIDTHS:
        cfg = {"T_in": scale["train"]["T_in"], "depth": scale["model"]["depth"], **extra}
        if breaking:
            cfg["breaking_inputs"] = list(breaking)
        h = hidden or width_for_params(model, scale["model"]["params"], **cfg)
        _WIDTHS[key] = (h, count_parameters(build_model(model, hidden=h, **cfg)))
    return _WIDTHS[key]


def plan_runs(scale: dict, studies: list[str], scenarios: list[str],
              models: list[str], seeds: list[int], djobs: list[DataJob], work: Path,
              device: str, threads: int, inputs_ok: bool) -> tuple[list[RunTask], list[str]]:
    by_key = {d.key: d for d in djobs}
    tasks: dict[str, RunTask] = {}
    notes: list[str] = []

    def add(study, data_key, label, model, breaking, seed, extra=None, width_of=None,
            variant=""):
        extra = dict(extra or {})
        # an ablation variant has its own options, or the width of another model
        h = width(width_of, scale, breaking)[0] if width_of else None
        h, n = width(model, scale, breaking, extra, hidden=h)
        tag = model + ("+" + "+".join(breaking) if breaking else "")
        if variant:
            tag += "@" + "".join(c if c.isalnum() else "-" for c in variant)
        mc = {"hidden": h, "depth": scale["model"]["depth"], **extra}
        if breaking:
            mc["breaking_inputs"] = list(breaking)
        t = RunTask(study, data_key, label, model, tuple(breaking), seed, h, n,
                    str(work / "runs" / data_key / tag / f"seed{seed}"),
                    by_key[data_key].path, dict(scale["train"]), dict(scale["eval"]), mc,
                    device, threads, variant)
        prev = tasks.get(t.out)
        if prev is None:
            tasks[t.out] = t
        elif study not in prev.study.split(","):
            prev.study += "," + study

    if "main" in studies:
        for sc in scenarios:
            for m in models:
                for s in seeds:
                    add("main", sc, m, m, (), s)
    if "sweep" in studies:
        for d in djobs:
            if d.level is None:
                continue
            for m in SWEEP_MODELS:
                if m in models:
                    for s in seeds:
                        add("sweep", d.key, m, m, (), s)
    if "inputs" in studies:
        for sc in INPUT_SCENARIOS:
            for label, m, br in INPUT_VARIANTS:
                if br and not inputs_ok:
                    continue
                for s in seeds:
                    add("inputs", sc, label, m, br, s)
        if not inputs_ok:
            notes.append("issue-7 variants with breaking inputs skipped")
    if "ablation" in studies:
        for sc in ABLATION_SCENARIOS:
            for label, m, extra, width_of in ABLATION_VARIANTS:
                var = label if (extra or width_of) else ""
                for s in seeds:
                    add("ablation", sc, label if var else m, m, (), s, extra, width_of, var)
    return sorted(tasks.values(), key=lambda t: -t.cost), notes


def train_samples_per_epoch(scale: dict, djob: DataJob) -> int:
    """Training windows one epoch visits: the train split that ``train.fit`` would
    resolve for this dataset (from the scenario spec; no data needed)."""
    import simulate
    from train.splits import SplitConfig, resolve_splits
    spec = simulate.preset(djob.scenario, **djob.params)
    tr = scale["train"]
    split = resolve_splits(
        SplitConfig(preset=tr["split_preset"], test_steps=scale["eval"]["steps"],
                    valid_stride=tr["valid_stride"]),
        n_time=spec.n_frames, n_sims=len(spec.sims), T_in=tr["T_in"], K=tr["K"],
        valid_steps=tr.get("valid_steps") or tr["K"],
        heldout_coord=[s.heldout for s in spec.sims])
    n = len(split.train)
    if tr["max_steps_per_epoch"]:
        n = min(n, tr["max_steps_per_epoch"] * tr["batch_size"])
    return n


def compute_estimate(scale: dict, tasks: list[RunTask], djobs: list[DataJob]) -> dict:
    """Training FLOPs of the plan: forward FLOPs per sample (counted by torch at batch 1)
    x 3 (forward + backward) x K steps x windows per epoch x epochs, summed over runs.
    Validation and test rollouts (forward only) are left out."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from surrogate import build_model
    res = scale["data"]["resolution"]
    tr = scale["train"]
    by_key = {d.key: d for d in djobs}
    fwd: dict[str, float] = {}
    samples: dict[str, int] = {}
    total = 0.0
    for t in tasks:
        mk = json.dumps([t.model, t.model_config], sort_keys=True)
        if mk not in fwd:
            m = build_model(t.model, T_in=tr["T_in"], **t.model_config)
            x = torch.zeros(1, tr["T_in"], 3, res, res)
            args = (x,)
            if t.breaking_inputs:
                from surrogate.breaking import data_layout
                c = len(data_layout(t.breaking_inputs).channels)
                args = (x, torch.zeros(1, c, res, res)) if c else (x,)
            with torch.no_grad(), FlopCounterMode(display=False) as fc:
                m(*args)
            fwd[mk] = float(fc.get_total_flops())
        if t.data_key not in samples:
            samples[t.data_key] = train_samples_per_epoch(scale, by_key[t.data_key])
        total += fwd[mk] * 3 * tr["K"] * samples[t.data_key] * tr["epochs"]
    return {"train_flop": total, "fwd_gflop_per_sample": {k: v / 1e9 for k, v in fwd.items()},
            "samples_per_epoch": samples}


# --------------------------------------------------------------------------------------
# Workers (spawned processes, one torch thread each)
# --------------------------------------------------------------------------------------
def _init_worker(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch
    torch.set_num_threads(threads)
    import warnings
    warnings.filterwarnings("ignore")


def generate_data(job: DataJob, device: str) -> dict:
    """Generate (or reuse) one dataset; returns its summary and data equivariance error."""
    import simulate
    t0 = time.perf_counter()
    spec = simulate.preset(job.scenario, **job.params)
    out = Path(job.path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        summary = simulate.generate(spec, out, resume=True, progress=False, threads=1,
                                    device=device)
    except simulate.GenerateError:  # an older file with other settings: replace it
        summary = simulate.generate(spec, out, overwrite=True, progress=False, threads=1,
                                    device=device)
    ds = simulate.open_dataset(out)
    info = {"key": job.key, "path": str(out), "sims": int(ds.sizes["sim"]),
            "frames": int(ds.sizes["time"]), "grid": f"{ds.sizes['y']}x{ds.sizes['x']}",
            "heldout": int(ds["heldout"].values.sum()) if "heldout" in ds.coords else None,
            "reused": bool(summary.get("already_complete")),
            "seconds": time.perf_counter() - t0}
    try:
        info["data_equivariance_error"] = float(simulate.data_equivariance_error(ds))
    except Exception:  # translation/boundary: no rotated partner runs
        info["data_equivariance_error"] = None
    ds.close()
    return info


def rollout_steps(meta: dict, split: str, steps: int) -> int:
    """``steps``, or the longest rollout the split leaves room for when the data are too
    short (training records that horizon in the checkpoint's split spec)."""
    spec = meta.get("splits") or {}
    h = (spec.get(split.replace("-", "_")) or {}).get("horizon")
    return max(1, min(steps, int(h))) if h else steps


def run_task(task: RunTask) -> dict:
    """Train one model and score its rollouts; reuse a finished run with the same key."""
    key = task.key()
    out = Path(task.out)
    res_path = out / "result.json"
    if res_path.is_file():
        try:
            old = json.loads(res_path.read_text())
            if old.get("key") == key:
                return {**old, "reused": True}
        except ValueError:
            pass
    t0 = time.perf_counter()
    try:
        import torch
        import evaluate
        import surrogate
        import train
        from train.config import ConfigError

        tr = task.train
        out.mkdir(parents=True, exist_ok=True)
        task_file = out / "task.json"
        same = task_file.is_file() and json.loads(task_file.read_text()).get("key") == key
        resume = same and (out / "last.pt").is_file()
        _write_json(task_file, {"key": key, **dataclasses.asdict(task)})
        split = train.SplitConfig(preset=tr["split_preset"], test_steps=task.eval["steps"],
                                  valid_stride=tr["valid_stride"])

        def cfg(resume: bool) -> "train.TrainConfig":
            return train.TrainConfig(
                data=[task.data_path], out=str(out), model=task.model,
                model_config=dict(task.model_config), T_in=tr["T_in"], K=tr["K"],
                batch_size=tr["batch_size"], epochs=tr["epochs"], lr=tr["lr"],
                lr_decay=tr["lr_decay"], patience=tr["patience"],
                max_steps_per_epoch=tr["max_steps_per_epoch"],
                valid_steps=tr.get("valid_steps"), seed=task.seed, **tr.get("recipe", {}),
                device=task.device, progress=False, resume=resume, overwrite=not resume,
                split=split)
        try:
            best = train.fit(cfg(resume))
        except ConfigError:
            if not resume:
                raise
            best = train.fit(cfg(False))
        t_train = time.perf_counter() - t0

        metrics = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()
                   if l.strip()]
        model = surrogate.load(best, device=task.device)
        meta = model.metadata
        ds = evaluate.open_data([task.data_path])
        scores: dict[str, Any] = {}
        for split_name in SPLITS:
            steps = rollout_steps(meta, split_name, task.eval["steps"])
            w = evaluate.build_windows(meta, split_name, ds, model.T_in, steps,
                                       max_windows=task.eval["max_windows"])
            r = evaluate.evaluate_split(model, ds, w, batch_size=task.eval["batch_size"],
                                        keep=0)
            scores[split_name] = {
                "rmse": r.summary["rmse"], "rmse_window_std": r.summary["rmse_std"],
                "rmse_velocity": r.summary.get("rmse_velocity"),
                "vrmse": r.summary.get("vrmse"), "n_windows": r.summary["n_windows"],
                "steps": steps, "note": w.note}
        ds.close()
        best_rec = min((m for m in metrics if m.get("epoch", 0) > 0),
                       key=lambda m: m["valid_rmse"])
        result = {
            "key": key, "study": task.study, "data_key": task.data_key,
            "label": task.label, "model": task.model, "variant": task.variant,
            "breaking_inputs": list(task.breaking_inputs), "seed": task.seed,
            "hidden": task.hidden, "params": surrogate.count_parameters(model.model),
            "scores": scores, "best_epoch": best_rec["epoch"],
            "best_valid_rmse": best_rec["valid_rmse"],
            "epochs_run": max(m["epoch"] for m in metrics),
            "train_seconds": t_train, "seconds": time.perf_counter() - t0,
            "torch_threads": torch.get_num_threads(), "finished": _now(), "reused": False,
        }
        _write_json(res_path, result)
        return result
    except Exception as e:  # noqa: BLE001 - reported per run, the benchmark goes on
        return {"key": key, "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(limit=6), "study": task.study,
                "data_key": task.data_key, "label": task.label, "model": task.model,
                "variant": task.variant,
                "breaking_inputs": list(task.breaking_inputs), "seed": task.seed,
                "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------
# Persistence baseline (last given frame repeated), on the windows the models are scored on
# --------------------------------------------------------------------------------------
def persistence(data_path: str, checkpoint: str, steps: int, max_windows: int | None
                ) -> dict[str, float]:
    import numpy as np
    import evaluate
    from evaluate import metrics as M
    from evaluate.rollout import iter_batches
    from surrogate import read_checkpoint

    meta = read_checkpoint(checkpoint)["metadata"]
    T_in = int(meta["T_in"])
    channels = list(meta["channels"])
    ds = evaluate.open_data([data_path])
    out = {}
    for split in SPLITS:
        n = rollout_steps(meta, split, steps)
        w = evaluate.build_windows(meta, split, ds, T_in, n, max_windows=max_windows)
        per: list[np.ndarray] = []
        for _, hist, targ in iter_batches(ds, w, channels, 64):
            pred = np.repeat(hist[:, -1:], n, axis=1)
            per.append(M.rmse_rollout(pred, targ))
        out[split] = float(np.concatenate(per).mean())
    ds.close()
    return out


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------
def _agg(vals: list[float]) -> tuple[float, float, int]:
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, 0
    m = sum(vals) / n
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return m, s, n


def _fmt(m: float, s: float, n: int, nseeds: int, bold: bool = False) -> str:
    if n == 0:
        return "–"
    txt = f"{m:.4f} ± {s:.4f}"
    if bold:
        txt = f"**{txt}**"
    if n < nseeds:
        txt += f" ({n}/{nseeds} seeds)"
    return txt


def collect(results: list[dict]) -> dict[tuple, dict[str, list[float]]]:
    """(data_key, label) -> split -> per-seed RMSE."""
    agg: dict[tuple, dict[str, list[float]]] = {}
    for r in results:
        if "error" in r:
            continue
        # a run shared by studies is stored under its model label and its variant label
        labels = {r["label"]}
        if not r["breaking_inputs"] and not r.get("variant"):
            labels.add(r["model"])
            for lab, m, br in INPUT_VARIANTS:
                if m == r["model"] and not br:
                    labels.add(lab)
        for lab in labels:
            d = agg.setdefault((r["data_key"], lab), {s: [] for s in SPLITS})
            for s in SPLITS:
                d[s].append(r["scores"][s]["rmse"])
    return agg


def verdicts(agg, scenarios, models, splits=SPLITS) -> list[str]:
    """Plain statements: does each relaxed model beat plain and its strict counterpart?"""
    lines = []
    for sc in scenarios:
        for split in splits:
            def mean(m):
                v = agg.get((sc, m), {}).get(split, [])
                return _agg(v)[0] if v else math.nan
            parts = []
            for rel, strict in STRICT_OF.items():
                if rel not in models:
                    continue
                r, p, s = mean(rel), mean("unet"), mean(strict)
                if math.isnan(r):
                    continue
                cmp = []
                if not math.isnan(p):
                    cmp.append(f"{(r / p - 1) * 100:+.0f}% vs unet")
                if not math.isnan(s):
                    cmp.append(f"{(r / s - 1) * 100:+.0f}% vs {strict}")
                parts.append(f"{rel} {', '.join(cmp)}")
            ranked = sorted(((mean(m), m) for m in models if not math.isnan(mean(m))))
            if ranked:
                lines.append(f"- {sc} {split}: best {ranked[0][1]} ({ranked[0][0]:.4f}); "
                             + "; ".join(parts))
    return lines


def main_tables(agg, base, scenarios, models, params, nseeds) -> list[str]:
    lines = []
    for split in SPLITS:
        lines += [f"### {split} RMSE", "",
                  "| model | params | " + " | ".join(scenarios) + " |",
                  "|---|---:|" + "---:|" * len(scenarios)]
        best = {}
        for sc in scenarios:
            ms = [(_agg(agg.get((sc, m), {}).get(split, []))[0], m) for m in models]
            ms = [x for x in ms if not math.isnan(x[0])]
            best[sc] = min(ms)[1] if ms else None
        for m in models:
            cells = [_fmt(*_agg(agg.get((sc, m), {}).get(split, [])), nseeds,
                          bold=best[sc] == m) for sc in scenarios]
            lines.append(f"| {m} | {params.get(m, '–'):,} | " + " | ".join(cells) + " |"
                         if isinstance(params.get(m), int) else
                         f"| {m} | – | " + " | ".join(cells) + " |")
        lines.append("| *persistence* | 0 | " + " | ".join(
            f"{base[sc][split]:.4f}" if sc in base else "–" for sc in scenarios) + " |")
        lines.append("")
    return lines


def sweep_table(agg, base, djobs, dinfo, models, nseeds) -> list[str]:
    sweep = [d for d in djobs if d.level is not None]
    ms = [m for m in SWEEP_MODELS if m in models]
    lines = ["| level | data eq. error | split | " + " | ".join(ms) + " | persistence |",
             "|---:|---:|---|" + "---:|" * (len(ms) + 1)]
    for d in sweep:
        err = dinfo.get(d.key, {}).get("data_equivariance_error")
        for split in SPLITS:
            vals = [_agg(agg.get((d.key, m), {}).get(split, [])) for m in ms]
            finite = [(v[0], i) for i, v in enumerate(vals) if not math.isnan(v[0])]
            bi = min(finite)[1] if finite else -1
            lines.append(f"| {d.level:g} | {err:.4f} | {split} | " if err is not None else
                         f"| {d.level:g} | – | {split} | ")
            lines[-1] += " | ".join(_fmt(*v, nseeds, bold=i == bi) for i, v in enumerate(vals))
            lines[-1] += f" | {base.get(d.key, {}).get(split, math.nan):.4f} |"
    return lines


def inputs_table(agg, base, params_v, nseeds, inputs_ok, why) -> list[str]:
    lines = ["| variant | model | params | " + " | ".join(
        f"{sc} {s}" for sc in INPUT_SCENARIOS for s in ("future", "domain")) + " |",
        "|---|---|---:|" + "---:|" * (2 * len(INPUT_SCENARIOS))]
    best = {}
    for sc in INPUT_SCENARIOS:
        for s in SPLITS:
            c = [(_agg(agg.get((sc, lab), {}).get(s, []))[0], lab) for lab, _, _ in INPUT_VARIANTS]
            c = [x for x in c if not math.isnan(x[0])]
            best[(sc, s)] = min(c)[1] if c else None
    for lab, m, br in INPUT_VARIANTS:
        cells = []
        for sc in INPUT_SCENARIOS:
            for s in SPLITS:
                v = _agg(agg.get((sc, lab), {}).get(s, []))
                cells.append(_fmt(*v, nseeds, bold=best[(sc, s)] == lab) if v[2] else
                             ("skipped" if br and not inputs_ok else "–"))
        p = params_v.get(lab)
        lines.append(f"| {lab} | {m}{' + ' + '+'.join(br) if br else ''} | "
                     f"{p:,} | " if isinstance(p, int) else f"| {lab} | {m} | – | ")
        lines[-1] += " | ".join(cells) + " |"
    lines.append("| *persistence* | – | 0 | " + " | ".join(
        f"{base.get(sc, {}).get(s, math.nan):.4f}" for sc in INPUT_SCENARIOS for s in SPLITS)
        + " |")
    if not inputs_ok:
        lines += ["", f"Variants with breaking inputs were skipped: {why}"]
    return lines


@functools.lru_cache(maxsize=None)
def relaxation_deviation(checkpoint: str) -> float | None:
    """Mean over relaxed layers of how far the learned relaxation weights are from
    equivariance (relative deviation; 0 = exactly equivariant); None for strict models."""
    import surrogate
    from evaluate import relaxation_summary
    layers = relaxation_summary(surrogate.load(checkpoint).model)
    return sum(l.relative_deviation for l in layers) / len(layers) if layers else None


def ablation_table(agg, tasks, nseeds) -> list[str]:
    cols = [(sc, s) for sc in ABLATION_SCENARIOS for s in SPLITS]
    lines = ["| variant | model | hidden | params | " + " | ".join(
        f"{sc} {s.split('-')[1]}" for sc, s in cols) + " | relaxation dev. "
        + " / ".join(ABLATION_SCENARIOS) + " |",
        "|---|---|---:|---:|" + "---:|" * (len(cols) + 1)]
    rows = []
    for label, m, extra, width_of in ABLATION_VARIANTS:
        key = label if (extra or width_of) else m
        ts = [t for t in tasks if t.model == m and not t.breaking_inputs
              and t.variant == (key if key == label else "")]
        rows.append((label, m, key, ts))
    best = {}
    for c in cols:
        v = [(_agg(agg.get((c[0], k), {}).get(c[1], []))[0], k) for _, _, k, _ in rows]
        v = [x for x in v if not math.isnan(x[0])]
        best[c] = min(v)[1] if v else None
    for label, m, key, ts in rows:
        cells = [_fmt(*_agg(agg.get((sc, key), {}).get(s, [])), nseeds, bold=best[(sc, s)] == key)
                 for sc, s in cols]
        devs = []
        for sc in ABLATION_SCENARIOS:
            d = [relaxation_deviation(str(Path(t.out) / "best.pt")) for t in ts
                 if t.data_key == sc and (Path(t.out) / "best.pt").is_file()]
            d = [x for x in d if x is not None]
            devs.append(f"{sum(d) / len(d):.3f}" if d else "–")
        t0 = ts[0] if ts else None
        lines.append(f"| {label} | {m} | {t0.hidden if t0 else '–'} | "
                     f"{f'{t0.params:,}' if t0 else '–'} | " + " | ".join(cells)
                     + f" | {' / '.join(devs)} |")
    return lines


def relaxation_table(tasks, dinfo, nseeds) -> list[str]:
    """How far the learned relaxation weights moved from equivariance, per dataset: does
    the relaxation find the breaking the data carry?"""
    rel = [m for m in STRICT_OF if any(t.model == m for t in tasks)]
    keys = list(dict.fromkeys(t.data_key for t in tasks))
    lines = ["| dataset | data eq. error | " + " | ".join(rel) + " |",
             "|---|---:|" + "---:|" * len(rel)]
    for k in keys:
        cells = []
        for m in rel:
            d = [relaxation_deviation(str(Path(t.out) / "best.pt")) for t in tasks
                 if t.data_key == k and t.model == m and not t.breaking_inputs
                 and not t.variant and (Path(t.out) / "best.pt").is_file()]
            d = [x for x in d if x is not None]
            cells.append(_fmt(*_agg(d), nseeds) if d else "–")
        if all(c == "–" for c in cells):
            continue
        err = dinfo.get(k, {}).get("data_equivariance_error")
        lines.append(f"| `{k}` | {'–' if err is None else f'{err:.4f}'} | "
                     + " | ".join(cells) + " |")
    return lines


def sweep_plot(agg, base, djobs, dinfo, models, path: Path, title: str, steps: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = [d for d in djobs if d.level is not None]
    if not sweep:
        return
    levels = [d.level for d in sweep]
    ms = [m for m in SWEEP_MODELS if m in models]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    style = {"unet": ("plain (unet)", "tab:gray", "o"),
             "gconv_unet": ("strict (gconv_unet)", "tab:blue", "s"),
             "relaxed_gconv_unet": ("relaxed (relaxed_gconv_unet)", "tab:red", "^")}
    for ax, split in zip(axes, SPLITS):
        for m in ms:
            st = [_agg(agg.get((d.key, m), {}).get(split, [])) for d in sweep]
            name, color, marker = style.get(m, (m, None, "o"))
            ax.errorbar(levels, [s[0] for s in st], yerr=[s[1] for s in st], label=name,
                        color=color, marker=marker, capsize=3)
        ax.plot(levels, [base.get(d.key, {}).get(split, math.nan) for d in sweep], "k:",
                label="persistence")
        errs = [dinfo.get(d.key, {}).get("data_equivariance_error") for d in sweep]
        ax.set_xticks(levels)
        ax.set_xticklabels([f"{lv:g}\n({e:.3f})" if e is not None else f"{lv:g}"
                            for lv, e in zip(levels, errs)])
        ax.set_xlabel("breaking level (data equivariance error)")
        ax.set_ylabel(f"{split} RMSE, {steps}-step rollout")
        ax.set_title(split)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------
def _machine(device: str) -> str:
    import torch
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    from bench_models import machine_name
    cpu = machine_name(torch.device("cpu"))
    gpu = "GPU present but unused" if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()}-core CPU ({cpu}), {gpu}"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--scale", choices=list(SCALES), default="cpu")
    p.add_argument("--studies", nargs="+", choices=STUDIES, default=None,
                   help="default: main sweep inputs (smoke: main inputs); add ablation "
                        "to run it too")
    p.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=None,
                   help="scenarios of the main study (default: all four)")
    p.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (0..N-1)")
    p.add_argument("--jobs", type=int, default=None, help="parallel training processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default per scale)")
    p.add_argument("--params", type=int, default=None, help="override the parameter target")
    p.add_argument("--epochs", type=int, default=None, help="override the epochs")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--work", default=None,
                   help="datasets and runs (default benchmarks/work/<scale>)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    return p.parse_args(argv)


def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = parse(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import copy
    scale = copy.deepcopy(SCALES[args.scale])
    if args.params:
        scale["model"]["params"] = args.params
    if args.epochs:
        scale["train"]["epochs"] = args.epochs
    studies = args.studies or scale.get("studies", DEFAULT_STUDIES)
    scenarios = args.scenarios or scale.get("scenarios", SCENARIOS)
    seeds = list(range(args.seeds if args.seeds is not None else scale["seeds"]))
    jobs = args.jobs or scale["jobs"]
    device = args.device or scale["device"]
    work = Path(args.work or ROOT / "benchmarks" / "work" / args.scale).resolve()
    out_dir = Path(args.out or (work / "results" if args.scale == "smoke"
                                else ROOT / "benchmarks" / "results")).resolve()

    import torch
    torch.set_num_threads(args.threads)
    if device.startswith("cuda") and not torch.cuda.is_available() and not args.dry_run:
        print(f"--device {device}: CUDA is not available on this machine", file=sys.stderr)
        return 2
    inputs_ok, why = breaking_support() if "inputs" in studies else (True, "")
    djobs = data_jobs(scale, scenarios, studies, work)
    tasks, notes = plan_runs(scale, studies, scenarios, args.models, seeds, djobs,
                             work, device, args.threads, inputs_ok)
    if not inputs_ok:
        _log(f"NOTE: {why}; the issue-7 variants with breaking inputs are skipped "
             "(strict and relaxed still run)")

    # ---- plan ---------------------------------------------------------------------
    tr, ev = scale["train"], scale["eval"]
    _log(f"scale {args.scale}: {len(djobs)} datasets, {len(tasks)} training runs, "
         f"{jobs} parallel jobs x {args.threads} thread(s), device {device}")
    _log(f"work {work}; results {out_dir}")
    for d in djobs:
        _log(f"  data {d.key:22s} {d.scenario} {d.params}")
    _log(f"  train T_in {tr['T_in']} K {tr['K']} batch {tr['batch_size']} epochs "
         f"{tr['epochs']} (max {tr['max_steps_per_epoch']} steps each) lr {tr['lr']} "
         f"decay {tr['lr_decay']} patience {tr['patience']} split {tr['split_preset']}; "
         f"eval {ev['steps']}-step rollouts, <= {ev['max_windows']} windows per split")
    seen = set()
    for t in tasks:
        k = (t.model, t.breaking_inputs, t.variant)
        if k not in seen:
            seen.add(k)
            name = t.model + ("+" + "+".join(t.breaking_inputs) if t.breaking_inputs else "")
            name += f" ({t.variant})" if t.variant else ""
            _log(f"  model {name:44s}"
                 f" depth {scale['model']['depth']} hidden {t.hidden:3d} params {t.params:,}")
    if args.dry_run:
        counts: dict[str, int] = {}
        for t in tasks:
            for s in t.study.split(","):
                counts[s] = counts.get(s, 0) + 1
        _log(f"  runs per study: {counts}; seeds {seeds}")
        est = compute_estimate(scale, tasks, djobs)
        tf = est["train_flop"] / 1e12
        _log(f"  training compute (forward x3 x K x windows x epochs, validation and tests "
             f"left out): {tf:,.1f} TFLOP = {tf / 100 / 3600:,.2f} h at a sustained 100 "
             f"TFLOP/s, {tf / 10 / 3600:,.1f} h at 10 TFLOP/s")
        _log("dry run: nothing generated or trained")
        return 0

    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    results: list[dict] = []
    dinfo: dict[str, dict] = {}
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                initargs=(args.threads,)) as pool:
        # ---- data ------------------------------------------------------------------
        t0 = time.perf_counter()
        futs = {pool.submit(generate_data, d, device): d for d in djobs}
        for f in cf.as_completed(futs):
            info = f.result()
            dinfo[info["key"]] = info
            _log(f"data {info['key']}: {info['sims']} sims x {info['frames']} frames "
                 f"{info['grid']} ({info['heldout']} held out) "
                 f"{'reused' if info['reused'] else '%.0f s' % info['seconds']}"
                 + (f", data equivariance error {info['data_equivariance_error']:.4f}"
                    if info["data_equivariance_error"] is not None else ""))
        t_data = time.perf_counter() - t0

        # ---- training runs ---------------------------------------------------------
        t0 = time.perf_counter()
        futs = {pool.submit(run_task, t): t for t in tasks}
        done = 0
        for f in cf.as_completed(futs):
            t = futs[f]
            r = f.result()
            done += 1
            results.append(r)
            el = time.perf_counter() - t0
            if "error" in r:
                _log(f"[{done}/{len(tasks)}] FAILED {t.data_key} {t.label} seed {t.seed}: "
                     f"{r['error']}")
            else:
                sc = r["scores"]
                _log(f"[{done}/{len(tasks)}] {t.data_key} {t.label} seed {t.seed}: "
                     f"future {sc['test-future']['rmse']:.4f} domain "
                     f"{sc['test-domain']['rmse']:.4f}"
                     f" ({'cached' if r.get('reused') else '%.0f s' % r['seconds']}; "
                     f"{el / 60:.1f} min elapsed)")
        t_runs = time.perf_counter() - t0

    # ---- baselines and tables ----------------------------------------------------------
    base: dict[str, dict[str, float]] = {}
    task_of = {t.key(): t for t in tasks}
    for d in djobs:
        r = next((r for r in results if r.get("data_key") == d.key and "error" not in r), None)
        if r is not None:
            t = task_of[r["key"]]
            base[d.key] = persistence(d.path, str(Path(t.out) / "best.pt"), ev["steps"],
                                      ev["max_windows"])
    agg = collect(results)
    params = {}
    for t in tasks:
        if not t.breaking_inputs and not t.variant:
            params[t.model] = t.params
    params_v = {}
    for lab, m, br in INPUT_VARIANTS:
        tt = next((t for t in tasks if t.model == m and tuple(t.breaking_inputs) == br), None)
        params_v[lab] = tt.params if tt else None
    total = time.perf_counter() - t_start
    n_reused = sum(1 for r in results if r.get("reused"))
    run_sum = sum(r.get("seconds", 0.0) for r in results)
    failed = [r for r in results if "error" in r]
    versions = f"torch {torch.__version__}, python {platform.python_version()}"
    try:
        import phi
        versions += f", phiflow {phi.__version__}"
    except Exception:
        pass
    cmd = "python benchmarks/bench_accuracy.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    nseeds = len(seeds)
    main_sc = [s for s in scenarios if "main" in studies]
    used: dict[str, set] = {sp: set() for sp in SPLITS}
    for r in results:
        for sp in SPLITS:
            if "error" not in r:
                used[sp].add(r["scores"][sp]["steps"])
    short = {sp: sorted(v) for sp, v in used.items() if v and v != {ev["steps"]}}
    steps_note = ("" if not short else " (the data are too short for that on " + "; ".join(
        f"{sp}: {', '.join(map(str, v))} steps, the longest they allow"
        for sp, v in short.items()) + ")")

    md = [f"# Accuracy benchmark ({args.scale} scale)", "",
          f"- date: {_now()}",
          f"- machine: {_machine(device)}; {jobs} parallel training processes x "
          f"{args.threads} torch thread(s); device {device}",
          f"- {versions}",
          f"- command: `{cmd}`",
          f"- total wall time: {total / 60:.1f} min (data {t_data:.0f} s, training + "
          f"evaluation {t_runs / 60:.1f} min; {len(tasks)} runs, {n_reused} reused from "
          f"the cache{f', {len(failed)} failed' if failed else ''})",
          f"- compute: the runs' own wall times sum to {run_sum / 60:.1f} min (cached runs "
          f"count the time they took when they ran), i.e. about {run_sum / 60 / jobs:.1f} "
          f"min on {jobs} parallel processes without the cache",
          "", "## Settings", "",
          f"- data: PhiFlow smoke plumes {scale['data']['resolution']}x"
          f"{scale['data']['resolution']}, {scale['data']['steps']} solver steps stored "
          f"every {scale['data']['save_every']} "
          f"({scale['data']['steps'] // scale['data']['save_every'] + 1} frames):"]
    for d in djobs:
        i = dinfo.get(d.key, {})
        extra = {k: v for k, v in d.params.items() if k not in scale["data"]}
        md.append(f"  - `{d.key}` ({extra}): {i.get('sims')} simulations, "
                  f"{i.get('heldout')} held out for test-domain"
                  + (f"; data equivariance error {i['data_equivariance_error']:.4f}"
                     if i.get("data_equivariance_error") is not None else ""))
    md += [
        f"- models: U-Net depth {scale['model']['depth']}, kernel 3, group C4, hidden "
        f"chosen by `surrogate.width_for_params` for ~{scale['model']['params']:,} "
        "parameters (hidden counts fields; exact counts in the tables)",
        f"- training: `train.fit`, T_in {tr['T_in']}, K {tr['K']} (autoregressive loss), "
        f"batch {tr['batch_size']}, AdamW lr {tr['lr']} (decay {tr['lr_decay']}/epoch, "
        f"weight decay 4e-4, grad clip 1), {tr['epochs']} epochs"
        + (f" of at most {tr['max_steps_per_epoch']} steps" if tr['max_steps_per_epoch']
           else "")
        + (f", early stopping patience {tr['patience']}" if tr['patience'] else
           ", no early stopping")
        + "; the checkpoint with the best valid RMSE ("
        + f"{tr.get('valid_steps') or tr['K']}-step rollouts) is scored",
        f"- splits (`train.SplitConfig(preset='{tr['split_preset']}')`, from each "
        "checkpoint): train/valid/test-future = start times 0-52% / 52-65% / 65-81% of the "
        "training simulations, test-domain = starts 0-33% of the held-out simulations"
        if tr["split_preset"] != "paper" else
        "- splits: the paper's (skip 2 frames; starts train 0-159, valid 160-199, "
        "test-future 200-249; test-domain 0-99 on held-out runs)",
        f"- score: RMSE over u, v and density (physical units) of {ev['steps']}-step "
        f"rollouts{steps_note}, history excluded; per run the mean over "
        f"{'all' if ev['max_windows'] is None else 'at most %d evenly spread' % ev['max_windows']}"
        " windows of the split; tables give mean ± sample std over "
        f"{nseeds} seed(s) (seeds {seeds}); bold = lowest mean in the column. "
        "Velocity-only RMSE and VRMSE per run are in the CSV.",
        "- persistence: the last given frame repeated, on the same windows",
    ]
    if "main" in studies:
        md += ["", "## Five models at equal parameter count", ""]
        md += main_tables(agg, base, main_sc, args.models, params, nseeds)
        md += ["Relaxed vs plain and vs its strict counterpart (relative change of the "
               "mean RMSE; negative = relaxed better):", ""]
        md += verdicts(agg, main_sc, args.models)
    if "sweep" in studies:
        md += ["", "## Symmetry-breaking sweep (`breaking_sweep`)", "",
               f"One dataset per level; plot: `accuracy_sweep_{args.scale}.png`.", ""]
        md += sweep_table(agg, base, djobs, dinfo, args.models, nseeds)
    if "inputs" in studies:
        md += ["", "## Breaking symmetry by inputs (issue 7)", "",
               "Group-conv family: strict = `gconv_unet`, relaxed = `relaxed_gconv_unet`; "
               "`cause` = buoyancy vector + inflow/obstacle/open-wall masks from the "
               "dataset, `frame` = the global axes as vector fields, `coords` = x, y "
               "channels. Test-future / test-domain RMSE.", ""]
        md += inputs_table(agg, base, params_v, nseeds, inputs_ok, why)
    if "ablation" in studies:
        md += ["", "## Ablation: what the relaxation buys", "",
               "`relaxed L=2` is the default relaxed group conv (2 filter banks) at the "
               "common parameter target, so it is narrower than `strict`; `relaxed L=1` "
               "(one bank, one weight per group element and layer) is nearly as wide as "
               "`strict`; `relaxed L=2 @ strict width` has the strict model's hidden "
               "width and so more parameters. The relaxed steerable coefficients are "
               "w(y) = w_bar + relax_scale * delta(y) (default relax_scale 0.1, alpha "
               "1e-5); the variants change one of the two; `@ strict width` rows have "
               "the strict steerable model's width (per-position coefficients: about "
               "9x its parameters). Relaxation dev. (0 = exactly equivariant; "
               "`evaluate.relaxation_summary`, averaged over relaxed layers and seeds): "
               "for a relaxed group conv the spread over g (std) of the learned weights "
               "w_l(g) relative to their mean magnitude; for a relaxed steerable conv the "
               "spread of the kernel coefficients over kernel positions relative to their "
               "size. Test-future / test-domain RMSE.", ""]
        md += ablation_table(agg, tasks, nseeds)
        md += ["", "Learned relaxation per dataset (the relaxed models of the other "
               "studies, at equal parameters): relaxation dev. as above for "
               "`relaxed_gconv_unet`; for `relaxed_steer_unet` the spread of the kernel "
               "coefficients over kernel positions relative to their size (0 = "
               "equivariant). Mean ± std over seeds. Data eq. error as in the settings "
               "(none for data without rotated partner runs).", ""]
        md += relaxation_table(tasks, dinfo, nseeds)
    if failed:
        md += ["", "## Failed runs", ""]
        md += [f"- {r['data_key']} {r['label']} seed {r['seed']}: {r['error']}"
               for r in failed]
    if notes:
        md += ["", "Notes: " + "; ".join(notes)]
    md_path = out_dir / f"accuracy_{args.scale}.md"
    md_path.write_text("\n".join(md) + "\n")

    # CSV: one row per run
    import csv
    csv_path = out_dir / f"accuracy_{args.scale}.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study", "data", "label", "model", "breaking_inputs", "seed", "hidden",
                     "params", "split", "rmse", "rmse_velocity", "vrmse", "n_windows",
                     "best_epoch", "train_seconds", "error"])
        for r in sorted(results, key=lambda r: (r["data_key"], r["label"], r["seed"])):
            if "error" in r:
                w.writerow([r["study"], r["data_key"], r["label"], r["model"],
                            "+".join(r["breaking_inputs"]), r["seed"], "", "", "", "", "",
                            "", "", "", "", r["error"]])
                continue
            for s in SPLITS:
                sc = r["scores"][s]
                w.writerow([r["study"], r["data_key"], r["label"], r["model"],
                            "+".join(r["breaking_inputs"]), r["seed"], r["hidden"],
                            r["params"], s, f"{sc['rmse']:.6g}",
                            f"{sc['rmse_velocity']:.6g}" if sc["rmse_velocity"] is not None
                            else "", f"{sc['vrmse']:.6g}" if sc["vrmse"] is not None else "",
                            sc["n_windows"], r["best_epoch"], f"{r['train_seconds']:.1f}", ""])
        for k, b in base.items():
            for s in SPLITS:
                w.writerow(["baseline", k, "persistence", "persistence", "", "", "", 0, s,
                            f"{b[s]:.6g}", "", "", "", "", "", ""])
    summary = {
        "scale": args.scale, "date": _now(), "machine": _machine(device),
        "versions": versions, "command": cmd, "settings": scale, "studies": studies,
        "scenarios": main_sc, "models": args.models, "seeds": seeds, "jobs": jobs,
        "threads": args.threads, "device": device,
        "wall_seconds": {"total": total, "data": t_data, "runs": t_runs},
        "datasets": dinfo, "persistence": base,
        "breaking_inputs_available": inputs_ok, "breaking_inputs_note": why,
        "aggregate": {f"{k[0]}|{k[1]}": {s: dict(zip(("mean", "std", "n"), _agg(v)))
                                         for s, v in d.items()} for k, d in agg.items()},
        "runs": results,
    }
    _write_json(out_dir / f"accuracy_{args.scale}.json", summary)
    if "sweep" in studies:
        sweep_plot(agg, base, djobs, dinfo, args.models,
                   out_dir / f"accuracy_sweep_{args.scale}.png",
                   f"breaking_sweep, {args.scale} scale: {ev['steps']}-step rollout RMSE, "
                   f"mean ± std over {nseeds} seeds", ev["steps"])
    _log(f"wrote {md_path} (+ .csv, .json{', sweep plot' if 'sweep' in studies else ''}); "
         f"total {total / 60:.1f} min")
    print("\n".join(md))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
