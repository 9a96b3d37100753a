"""The evaluation job: checkpoints x splits -> rollouts scored against persistence,
model equivariance and the symmetry each model keeps, handed to :mod:`evaluate.report`.

>>> import evaluate
>>> evaluate.run(["runs/rg/best.pt", "runs/unet/best.pt"], "data/rotation.nc",
...              splits=["test-future", "test-domain"], steps=20, out="results/cmp")
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from surrogate.devices import DeviceError, resolve_device
from surrogate.folders import clear_leftovers, hold

from . import plots
from .baselines import PERSISTENCE_LABEL, Persistence
from .discovery import discover_symmetry
from .equivariance import (EquivarianceError, data_equivariance_error,
                           model_equivariance_error, relaxation_summary)
from .markdown import fmt as _fmt
from .report import ModelEvaluation, log, sim_labels, write_report
from .rollout import (EvaluationError, RolloutResult, Windows, as_list, build_windows,
                      display_split, evaluate_split, iter_batches, load_aux, load_frames,
                      open_data)

__all__ = ["run"]


def _labels(paths: Sequence[Path], names: Sequence[str]) -> list[str]:
    """Distinct display names: a repeated model name gets its run folder, then the file
    stem, then its position appended."""
    labels = [f"{n}@{p.parent.name}" if names.count(n) > 1 and p.parent.name else n
              for p, n in zip(paths, names)]
    for suffix in (lambda i: f"/{paths[i].stem}", lambda i: f"#{i + 1}"):
        for i, l in enumerate(labels):
            if labels.count(l) > 1:
                labels[i] = l + suffix(i)
    return labels


def run(checkpoints: str | os.PathLike | Sequence[str | os.PathLike],
        data: str | os.PathLike | Sequence[str | os.PathLike],
        splits: str | Sequence[str] = ("test-future", "test-domain"), steps: int = 20,
        out: str | os.PathLike = "results", *, device: str = "auto", batch_size: int = 32,
        stride: int | None = None, max_windows: int | None = None,
        equivariance_windows: int = 8, group: str | None = None,
        discovery_group: str = "D4", labels: Sequence[str] | None = None,
        figures: bool = True, gif: bool = True,
        quantity: str | Sequence[str] = "speed", plot_steps: Sequence[int] | None = None,
        verbose: bool = False, overwrite: bool = False,
        key: bytes | str | None = None) -> Path:
    """Evaluate ``checkpoints`` on ``splits`` of ``data`` and write the report to ``out``;
    returns ``out``, raises :class:`EvaluationError` (a ``ValueError``) for bad input.

    Each checkpoint's split spec decides the windows (:func:`build_windows`; ``stride`` /
    ``max_windows`` thin them); each window's history is rolled out ``steps`` steps and
    scored per step. Persistence (the last given frame repeated) is scored on every
    model's windows: a row of its own in every table, a dashed line in every error curve
    and a "vs persistence" ratio per model. ``equivariance_windows`` histories per split
    give the model equivariance error (``group``: default the model's, C4 for ``unet``;
    ``"D4"`` adds mirrors) and, pooled over the splits, the symmetry each model keeps
    (:func:`evaluate.discovery.discover_symmetry` on ``discovery_group``, C4 or D4).
    Writes ``metrics.csv``, ``summary.md``, ``summary.json`` and
    (``figures``) PNGs plus (``gif``) one GIF per model and split; ``quantity``: the
    field(s) of the rollout panels (``speed``, ``vorticity``, ``density``; one figure
    each, the GIFs show the first). ``out`` must be new or empty unless ``overwrite``,
    which replaces the report's files only (every other file stays); one process at a
    time owns ``out`` (:func:`surrogate.folders.hold`). The report is written into a
    sibling folder ``.NAME.partial`` and moved in only when complete, so a failed
    evaluation never leaves a half-written or lost report (a full disk raises the one-line
    ``surrogate.diskfull.DiskFullError``; a killed run's ``.NAME.partial`` is removed by
    the next run of ``out``). ``key``: refuse checkpoints not signed with it
    (:func:`surrogate.load`). Non-finite values in the evaluated frames give a warning
    naming split, simulation and frame."""
    out = Path(out)
    try:
        device = str(resolve_device(device))  # before any file is read
    except DeviceError as e:
        raise EvaluationError(str(e)) from None
    if discovery_group not in ("C4", "D4"):
        raise EvaluationError(f"discovery group must be C4 or D4, got {discovery_group!r}")
    ckpts, split_names, quantities = _check_request(checkpoints, splits, steps, labels,
                                                    quantity, group, plot_steps)
    with hold(out, EvaluationError):
        clear_leftovers(out, "partial")  # what a killed or failed run of ``out`` left
        _check_out(out, overwrite)
        return _run(ckpts, data, split_names, steps, out, device, batch_size, stride,
                    max_windows, equivariance_windows, group, labels,
                    quantities if figures else None, plot_steps, gif, verbose, key,
                    discovery_group)


def _run(ckpts: list[Path], data, split_names: list[str], steps: int, out: Path,
         device: str, batch_size: int, stride, max_windows, equivariance_windows: int,
         group, labels, quantities: list[str] | None, plot_steps, gif: bool,
         verbose: bool, key, discovery_group: str = "D4") -> Path:
    """:func:`run` once its request is checked and ``out`` is held."""
    ds = open_data(data)
    data_paths = [str(d) for d in as_list(data)]
    models = _load_models(ckpts, device, key)
    _check_length(models, ckpts, ds, steps)
    labels = list(labels) if labels is not None else _labels(ckpts, [m.name for m in models])

    t0 = time.time()
    log(f"evaluating {len(models)} model(s) on {', '.join(split_names)} of "
         f"{', '.join(data_paths)}", verbose)
    data_eq = data_equivariance_error(ds)
    job = _Job(ds, split_names, int(steps), batch_size, stride, max_windows,
               equivariance_windows, group, verbose, discovery_group)
    evals = [_evaluate_model(job, sur, label, ckpt, data_paths)
             for ckpt, sur, label in zip(ckpts, models, labels)]
    evals.append(_persistence_row(evals, split_names))

    scen = ds.attrs.get("scenario")
    dt = next((r.dt for ev in evals for r in ev.results.values()), 1.0)
    meta = {"data": data_paths, "scenario": str(scen) if scen is not None else None,
            "dt": dt, "steps": int(steps), "splits": split_names,
            "checkpoints": [str(c) for c in ckpts], "device": str(models[0].device),
            "seconds": round(time.time() - t0, 2), "warnings": job.warnings,
            "sim_labels": sim_labels(ds)}
    return write_report(evals, split_names, data_eq, meta, out, quantities, plot_steps,
                         gif, verbose)


def _check_request(checkpoints, splits, steps, labels, quantity, group, plot_steps=None
                   ) -> tuple[list[Path], list[str], list[str]]:
    """The checkpoint paths, split names and quantities of a request, or a one-line
    :class:`EvaluationError` (before any file is read)."""
    ckpts = [Path(c) for c in as_list(checkpoints)]
    if not ckpts:
        raise EvaluationError("no checkpoint given")
    split_list = [splits] if isinstance(splits, str) else list(splits)
    if not split_list:
        raise EvaluationError("no split given")
    split_names = list(dict.fromkeys(display_split(s) for s in split_list))
    if int(steps) < 1:
        raise EvaluationError(f"steps must be >= 1, got {steps}")
    if labels is not None and len(labels) != len(ckpts):
        raise EvaluationError(f"{len(labels)} labels for {len(ckpts)} checkpoints")
    quantities = [quantity] if isinstance(quantity, str) else list(quantity)
    bad = [q for q in quantities if q not in plots.QUANTITIES]
    if bad or not quantities:
        raise EvaluationError(f"unknown quantity {(bad or [None])[0]!r}; choose from "
                              f"{', '.join(plots.QUANTITIES)}")
    if group is not None and group not in ("C4", "D4"):
        raise EvaluationError(f"group must be C4 or D4 (grid-exact), got {group!r}")
    bad = [p for p in (plot_steps or ()) if not (isinstance(p, (int, np.integer))
                                                 and 1 <= p <= int(steps))]
    if bad:
        raise EvaluationError(f"plot step {bad[0]!r} is outside the rollout: plot steps "
                              f"(--plot-steps) must be in 1..{int(steps)} (--steps)")
    for c in ckpts:
        if not c.is_file():
            raise EvaluationError(f"{c}: no such checkpoint file")
    return ckpts, split_names, quantities


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder without ``overwrite`` (``out`` is held)."""
    if out.exists() and not out.is_dir():
        raise EvaluationError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise EvaluationError(f"{out} is not empty; pass --overwrite (overwrite=True) to "
                              "replace the report in it (other files are kept), or "
                              "choose another --out")


def _load_models(ckpts: Sequence[Path], device: str, key) -> list:
    from surrogate.checkpoint import CheckpointError
    from surrogate.forecast import ForecastError, load

    try:
        return [load(c, device=device, key=key) for c in ckpts]
    except (CheckpointError, ForecastError) as e:
        raise EvaluationError(str(e)) from e


def _check_length(models: Sequence, ckpts: Sequence[Path], ds, steps: int) -> None:
    """Every model's history plus ``steps`` frames fit in the data (checked before any
    model is evaluated, not when a later one reaches its windows)."""
    n_time = int(ds.sizes["time"])
    for sur, ckpt in zip(models, ckpts):
        if sur.T_in + steps > n_time:
            raise EvaluationError(
                f"the data have {n_time} frames, too few for T_in + steps = {sur.T_in} + "
                f"{steps} ({ckpt}); --steps can be at most {max(n_time - sur.T_in, 0)}")


@dataclass
class _Job:
    """What every model of one :func:`run` is evaluated on, and the warnings so far."""
    ds: Any
    splits: list[str]
    steps: int
    batch_size: int
    stride: int | None
    max_windows: int | None
    equivariance_windows: int
    group: str | None
    verbose: bool
    discovery_group: str = "D4"
    warnings: list[str] = field(default_factory=list)
    cache: dict = field(default_factory=dict)   # persistence results per window set

    def warn(self, msg: str, always: bool = False) -> None:
        self.warnings.append(msg)
        log(f"warning: {msg}", self.verbose or always)


def _evaluate_model(job: _Job, sur, label: str, ckpt: Path,
                    data_paths: Sequence[str]) -> ModelEvaluation:
    """One model on every split: rollout metrics, equivariance error, persistence."""
    ds = job.ds
    missing = [v for v in sur.layout.channels if v not in ds.data_vars]
    if missing:
        raise EvaluationError(f"data lack variable(s) {missing} that {label} needs")
    grid = sur.grid
    if grid is not None and (int(ds.sizes["y"]), int(ds.sizes["x"])) != grid:
        raise EvaluationError(f"{label} was trained on a {grid[0]}x{grid[1]} grid, "
                              f"the data are {ds.sizes['y']}x{ds.sizes['x']}")
    trained_on = [os.path.basename(f) for f in sur.record.data.files]
    given = [os.path.basename(p) for p in data_paths]
    if trained_on and trained_on != given:
        job.warn(f"{label} was trained on {', '.join(trained_on)}; evaluated on "
                 f"{', '.join(given)} (split windows index the given files)")
    ev = ModelEvaluation(label, str(ckpt), sur.name, dict(sur.model.config),
                         relaxation=relaxation_summary(sur))
    hists = [_evaluate_split_of(job, sur, label, split, ev) for split in job.splits]
    aux = None if hists[0][1] is None else torch.cat([a for _, a, _ in hists])
    ev.symmetry = discover_symmetry(sur, torch.cat([h for h, _, _ in hists]),
                                    job.discovery_group, aux=aux,
                                    targets=torch.cat([y for _, _, y in hists]))
    log(f"  {label}: {ev.symmetry.verdict}", job.verbose)
    return ev


def _evaluate_split_of(job: _Job, sur, label: str, split: str, ev: ModelEvaluation
                       ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Rollout metrics, equivariance error and persistence of one split; returns the
    equivariance histories ``(B, T_in, C, H, W)`` and their aux fields (or None)."""
    from surrogate.forecast import ForecastError

    ds, channels = job.ds, list(sur.layout.channels)
    windows = build_windows(sur.record, split, ds, sur.T_in, job.steps, job.stride,
                            job.max_windows)
    t = time.time()
    try:
        res = ev.results[split] = evaluate_split(sur, ds, windows, job.batch_size, keep=1)
    except ForecastError as e:
        raise EvaluationError(f"{label}: {e}") from e
    if not all(math.isfinite(v) for v in res.summary.values() if isinstance(v, float)):
        job.warn(f"{label} / {split}: non-finite metrics; "
                 f"{_first_nonfinite(ds, windows, channels)}", always=True)
    eq_windows = windows.subset(job.equivariance_windows)
    pairs = list(iter_batches(ds, eq_windows, channels, job.batch_size))
    hist = np.concatenate([h for _, h, _ in pairs])
    nxt = torch.from_numpy(np.concatenate([t[:, 0] for _, _, t in pairs]))  # true next frames
    aux = (torch.from_numpy(load_aux(ds, sur.aux_channels, eq_windows.sims))
           if sur.aux_channels else None)
    hist = torch.from_numpy(hist)
    eq = ev.equivariance[split] = model_equivariance_error(sur, hist, group=job.group,
                                                           aux=aux)
    ev.persistence[split] = _persistence(sur, ds, windows, job.batch_size, job.cache)
    log(f"  {label} / {split}: {len(windows)} windows, RMSE "
         f"{_fmt(res.summary.get('rmse'))}, equivariance error "
         f"{_fmt(eq.mean)} ({time.time() - t:.1f} s)", job.verbose)
    return hist, aux, nxt


def _first_nonfinite(ds, windows: Windows, channels: Sequence[str]) -> str:
    """Where the first NaN/inf of the frames the windows read lies."""
    for sim, (lo, hi) in windows.spans().items():
        bad = ~np.isfinite(load_frames(ds, channels, sim, lo, hi))  # (T, C, H, W)
        if bad.any():
            t, c = np.argwhere(bad.any(axis=(2, 3)))[0]
            return (f"the data hold non-finite values in simulation {sim}, frame "
                    f"{lo + int(t)}, variable {channels[int(c)]!r}")
    return "the data are finite there: the model's rollout diverged"


def _persistence(sur, ds, windows, batch_size: int,
                 cache: dict[bytes, RolloutResult]) -> RolloutResult:
    """Persistence scored on ``windows`` (computed once per distinct window set)."""
    key = (np.asarray(windows.sims).tobytes() + b"|" + np.asarray(windows.starts).tobytes()
           + f"|{windows.T_in}|{windows.steps}|{','.join(sur.layout.channels)}".encode())
    if key not in cache:
        cache[key] = evaluate_split(Persistence(sur.layout, sur.T_in), ds, windows,
                                    batch_size, keep=1)
    return cache[key]


def _persistence_row(evals: Sequence[ModelEvaluation], splits: Sequence[str]
                     ) -> ModelEvaluation:
    """The persistence baseline as a row of its own, on the first model's windows."""
    first = evals[0].persistence
    res = {s: first[s] for s in splits if s in first}
    return ModelEvaluation(PERSISTENCE_LABEL, "", PERSISTENCE_LABEL, {}, res,
                           persistence=dict(res), baseline=True)
