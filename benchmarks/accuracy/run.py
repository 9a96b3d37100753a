"""The run: datasets, training and scoring in spawned worker processes; persistence."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import json
import multiprocessing as mp
import os
import time
import traceback
from pathlib import Path
from typing import Any

from . import log, now, write_json
from .plan import SPLITS, DataJob, Plan, RunTask


def init_worker(threads: int) -> None:
    """Set up a worker process: ``threads`` torch/OpenMP threads, warnings off."""
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
    kw = dict(progress=False, threads=1, device=device)
    try:
        summary = simulate.generate(spec, out, resume=True, **kw)
    except simulate.GenerateError:  # an older file with other settings: replace it
        summary = simulate.generate(spec, out, overwrite=True, **kw)
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
    from evaluate.observability import observability
    info["observability"] = observability(ds).line()   # can one frame show the cause?
    ds.close()
    return info


def rollout_steps(meta: dict, split: str, steps: int) -> int:
    """``steps``, or the longest rollout the split has room for (its recorded horizon)."""
    # training records that horizon in the checkpoint's split spec when data are short
    spec = meta.get("splits") or {}
    h = (spec.get(split.replace("-", "_")) or {}).get("horizon")
    return max(1, min(steps, int(h))) if h else steps


def _train(task: RunTask, out: Path, key: str) -> str:
    """Train the run's model with ``train.fit`` (resuming a matching interrupted run)."""
    import train
    from train.config import ConfigError

    tr = task.train
    out.mkdir(parents=True, exist_ok=True)
    task_file = out / "task.json"
    same = task_file.is_file() and json.loads(task_file.read_text()).get("key") in (
        key, task.legacy_key())
    resume = same and (out / "last.pt").is_file()
    write_json(task_file, {"key": key, **dataclasses.asdict(task)})
    split = train.SplitConfig(preset=tr["split_preset"], test_steps=task.eval["steps"],
                              valid_stride=tr["valid_stride"])
    kw = dict(data=[task.data_path], out=str(out), model=task.model,
              model_config=dict(task.model_config), T_in=tr["T_in"], K=tr["K"],
              batch_size=tr["batch_size"], epochs=tr["epochs"], lr=tr["lr"],
              lr_decay=tr["lr_decay"], patience=tr["patience"],
              max_steps_per_epoch=tr["max_steps_per_epoch"],
              valid_steps=tr.get("valid_steps"), seed=task.seed, **tr.get("recipe", {}),
              device=task.device, progress=False, split=split)
    try:
        return train.fit(train.TrainConfig(**kw, resume=resume, overwrite=not resume))
    except ConfigError:  # the interrupted run's settings no longer fit: start over
        if not resume:
            raise
        return train.fit(train.TrainConfig(**kw, resume=False, overwrite=True))


def _score(task: RunTask, model: Any) -> dict[str, Any]:
    """RMSE (all fields and velocity), VRMSE and windows of the model's rollouts per split."""
    import evaluate
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
            "rmse_density": r.summary.get("rmse_density"),
            "vrmse": r.summary.get("vrmse"), "n_windows": r.summary["n_windows"],
            "steps": steps, "note": w.note}
    ds.close()
    return scores


def _identity(task: RunTask, key: str) -> dict[str, Any]:
    """The fields that name a run in its result (and in a failure record)."""
    return {"key": key, "study": task.study, "data_key": task.data_key,
            "label": task.label, "model": task.model, "variant": task.variant,
            "breaking_inputs": list(task.breaking_inputs), "seed": task.seed}


def _train_and_score(task: RunTask, key: str, out: Path, t0: float) -> dict[str, Any]:
    """Train, score and write ``result.json``; returns the result."""
    import torch
    import surrogate

    best = _train(task, out, key)
    t_train = time.perf_counter() - t0
    metrics = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()
               if l.strip()]
    model = surrogate.load(best, device=task.device)
    scores = _score(task, model)
    best_rec = min((m for m in metrics if m.get("epoch", 0) > 0),
                   key=lambda m: m["valid_rmse"])
    result = {
        **_identity(task, key),
        "hidden": task.hidden, "params": surrogate.count_parameters(model.model),
        "scores": scores, "best_epoch": best_rec["epoch"],
        "best_valid_rmse": best_rec["valid_rmse"],
        "epochs_run": max(m["epoch"] for m in metrics),
        "train_seconds": t_train, "seconds": time.perf_counter() - t0,
        "torch_threads": torch.get_num_threads(), "finished": now(), "reused": False,
    }
    write_json(out / "result.json", result)
    return result


def _cached(task: RunTask, key: str, res: Path) -> dict | None:
    """The finished result in ``res`` when it was made with this run's settings (a result
    under the old absolute-path key is re-keyed in place), else None."""
    try:
        old = json.loads(res.read_text()) if res.is_file() else {}
    except ValueError:  # a broken file: train again
        return None
    if old.get("key") == key:
        return old
    if old.get("key") is not None and old["key"] == task.legacy_key():
        old["key"] = key
        write_json(res, old)
        return old
    return None


class _Busy(Exception):
    """Another process holds the run folder."""


@contextlib.contextmanager
def _claim(out: Path, poll: float = 10.0):
    """Hold run folder ``out`` for one benchmark process: another benchmark on the same
    cache that wants the same run waits here until this one is done (and then reuses its
    result) instead of training the same folder at the same time."""
    from surrogate.folders import hold
    claim = out.parent / f"{out.name}.bench"   # its lock file: .NAME.bench.lock beside out
    with contextlib.ExitStack() as stack:
        waited = False
        while True:
            try:
                stack.enter_context(hold(claim, _Busy))
                break
            except _Busy as e:
                if "in use" not in str(e):     # not another holder: the folder's problem
                    raise OSError(str(e)) from None
                if not waited:
                    log(f"waiting for another benchmark process that is training {out}")
                    waited = True
                time.sleep(poll)
        yield


def run_task(task: RunTask) -> dict:
    """Train one model and score its rollouts; reuse a finished run with the same key
    (waiting while another benchmark process trains it)."""
    key = task.key()
    out = Path(task.out)
    t0 = time.perf_counter()
    try:
        with _claim(out):
            if (old := _cached(task, key, out / "result.json")) is not None:
                return {**old, "reused": True}
            t0 = time.perf_counter()
            return _train_and_score(task, key, out, t0)
    except Exception as e:  # noqa: BLE001 - reported per run, the benchmark goes on
        # limit 8: the same depth below train/evaluate as the old single function's 6
        return {"key": key, "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(limit=8), **_identity(task, key),
                "seconds": time.perf_counter() - t0}


@dataclasses.dataclass
class RunOutcome:
    """What the pool produced: per-run results, dataset summaries and wall times."""
    results: list[dict]
    dinfo: dict[str, dict]
    t_data: float
    t_runs: float


def _as_completed(pool: cf.Executor, fn, items: list, *args):
    """``(item, fn(item, *args))`` for every item, computed in the pool, as they finish."""
    futs = {pool.submit(fn, x, *args): x for x in items}
    for f in cf.as_completed(futs):
        yield futs[f], f.result()


def execute(plan: Plan, jobs: int, device: str, threads: int) -> RunOutcome:
    """Generate (or reuse) the plan's datasets, then train and score its runs, ``jobs`` at
    a time; results in the order they finished."""
    dinfo: dict[str, dict] = {}
    results: list[dict] = []
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=init_worker,
                                initargs=(threads,)) as pool:
        t0 = time.perf_counter()
        for _, i in _as_completed(pool, generate_data, plan.djobs, device):
            dinfo[i["key"]] = i
            err = i["data_equivariance_error"]
            log(f"data {i['key']}: {i['sims']} sims x {i['frames']} frames {i['grid']} "
                f"({i['heldout']} held out) "
                f"{'reused' if i['reused'] else '%.0f s' % i['seconds']}"
                + (f", data equivariance error {err:.4f}" if err is not None else ""))
        t_data = time.perf_counter() - t0
        t0 = time.perf_counter()
        for t, r in _as_completed(pool, run_task, plan.tasks):
            results.append(r)
            head = f"[{len(results)}/{len(plan.tasks)}]"
            if "error" in r:
                log(f"{head} FAILED {t.data_key} {t.label} seed {t.seed}: {r['error']}")
                continue
            sc, mins = r["scores"], (time.perf_counter() - t0) / 60
            log(f"{head} {t.data_key} {t.label} seed {t.seed}: future "
                f"{sc['test-future']['rmse']:.4f} domain {sc['test-domain']['rmse']:.4f} "
                f"({'cached' if r.get('reused') else '%.0f s' % r['seconds']}; "
                f"{mins:.1f} min elapsed)")
        t_runs = time.perf_counter() - t0
    return RunOutcome(results, dinfo, t_data, t_runs)


def persistence(data_path: str, checkpoint: str, steps: int, max_windows: int | None,
                channel: str | None = None) -> tuple[dict[str, float], ...]:
    """RMSE per split of repeating the last given frame, on the checkpoint's windows:
    over all fields, and over the velocity (the layout's first vector field, as
    ``evaluate`` scores the models; no entry when the layout has no vector field); with
    ``channel`` also over that channel alone (a third dict)."""
    import numpy as np
    import evaluate
    from evaluate import metrics as M
    from evaluate.rollout import iter_batches
    from surrogate import read_checkpoint
    from surrogate.symmetry import FieldLayout

    meta = read_checkpoint(checkpoint)["metadata"]
    T_in = int(meta["T_in"])
    channels = list(meta["channels"])
    layout = FieldLayout.of(meta.get("layout"))  # velocity = its first vector, as evaluate's
    vel = [channels.index(c) for c in layout.vectors[0]] if layout.vectors else None
    ds = evaluate.open_data([data_path])
    one = [channels.index(channel)] if channel in channels else None
    out, out_vel, out_one = {}, {}, {}
    for split in SPLITS:
        n = rollout_steps(meta, split, steps)
        w = evaluate.build_windows(meta, split, ds, T_in, n, max_windows=max_windows)
        per, per_vel, per_one = [], [], []
        for _, hist, targ in iter_batches(ds, w, channels, 64):
            pred = np.repeat(hist[:, -1:], n, axis=1)
            per.append(M.rmse_rollout(pred, targ))
            if vel is not None:
                per_vel.append(M.rmse_rollout(pred, targ, vel))
            if one is not None:
                per_one.append(M.rmse_rollout(pred, targ, one))
        out[split] = float(np.concatenate(per).mean())
        if per_vel:
            out_vel[split] = float(np.concatenate(per_vel).mean())
        if per_one:
            out_one[split] = float(np.concatenate(per_one).mean())
    ds.close()
    return (out, out_vel, out_one) if channel is not None else (out, out_vel)


def persistence_baselines(plan: Plan, results: list[dict], ev: dict
                          ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Persistence per dataset (all fields, velocity), on the windows of its first
    successful run's checkpoint."""
    base: dict[str, dict[str, float]] = {}
    base_vel: dict[str, dict[str, float]] = {}
    task_of = {t.key(): t for t in plan.tasks}
    for d in plan.djobs:
        r = next((r for r in results if r.get("data_key") == d.key and "error" not in r), None)
        if r is not None:
            t = task_of[r["key"]]
            base[d.key], base_vel[d.key] = persistence(
                d.path, str(Path(t.out) / "best.pt"), ev["steps"], ev["max_windows"])
    return base, base_vel
