"""Evaluation windows and rollouts.

A window ``(sim, start)`` gives the model frames ``start .. start+T_in-1`` as history
and compares its next ``steps`` predictions with frames ``start+T_in ..
start+T_in+steps-1``. The history frames are never scored.

Which windows form a split comes from the checkpoint's metadata (``metadata["splits"]``,
written by training: per split the sim indices over the concatenated data files, the
half-open range ``[start, stop)`` of start frames and a ``stride``); ``all`` is every
simulation of the given data (starts ``0, stride, ...``; for data the checkpoint was not
trained on). A model with the ``cause`` breaking input gets each window's static cause
fields from the data (:func:`load_aux`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import xarray as xr

from surrogate.breaking import CauseFieldError, read_cause_fields
from surrogate.forecast import NonFiniteForecastWarning
from surrogate.records import TrainingRecord, Windows

from . import metrics as M

__all__ = ["EvaluationError", "SPLITS", "canonical_split", "display_split", "Windows",
           "open_data", "build_windows", "RolloutResult", "evaluate_split", "load_frames",
           "load_aux"]

SPLITS = ("test-future", "test-domain", "valid", "train", "all")


class EvaluationError(ValueError):
    """Input that cannot be evaluated (unknown split, data that do not match, ...)."""


def canonical_split(name: str) -> str:
    """``test-domain``/``test_domain``/``Test-Domain`` -> ``test_domain`` (the key used in
    the checkpoint's split spec)."""
    key = str(name).strip().lower().replace("-", "_")
    if key.replace("_", "-") not in SPLITS:
        raise EvaluationError(f"unknown split {name!r}; choose from {', '.join(SPLITS)}")
    return key


def display_split(name: str) -> str:
    return canonical_split(name).replace("_", "-")


def as_list(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list:
    """One path (``str`` or ``os.PathLike``) or several, as a list."""
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


# -- data --------------------------------------------------------------------------
def open_data(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> xr.Dataset:
    """Open one or several dataset files (shards, concatenated along ``sim`` in the given
    order, as training does) through ``simulate.open_dataset``: the schema check of
    every reader, and every value read once (a damaged block is refused here, "corrupt
    or unreadable", not halfway through the evaluation)."""
    paths = [str(p) for p in as_list(paths)]
    if not paths:
        raise EvaluationError("no data files given")
    from simulate import DatasetError, open_dataset

    parts: list[xr.Dataset] = []
    try:
        # one file at a time, joined in the order given: the split spec of a checkpoint
        # indexes simulations over the files concatenated in training's order
        for p in paths:
            parts.append(open_dataset(p, scan=True))
    except DatasetError as e:
        for ds in parts:
            ds.close()
        raise EvaluationError(first_line(e)) from None
    try:
        return parts[0] if len(parts) == 1 else xr.concat(
            parts, dim="sim", data_vars="minimal", coords="minimal", compat="override",
            join="override", combine_attrs="override")
    except (ValueError, KeyError) as e:
        raise EvaluationError(f"cannot join {paths} along 'sim': {e}") from e


def load_frames(ds: xr.Dataset, channels: Sequence[str], sim: int, t0: int, t1: int
                ) -> np.ndarray:
    """Frames ``t0 .. t1-1`` of simulation ``sim`` as ``(t1-t0, C, y, x)`` float32."""
    missing = [c for c in channels if c not in ds.data_vars]
    if missing:
        raise EvaluationError(f"data lack variable(s) {missing}; the model needs "
                              f"{list(channels)}")
    sub = ds.isel(sim=sim, time=slice(t0, t1))
    return np.stack([sub[c].transpose("time", "y", "x").values for c in channels],
                    axis=1).astype(np.float32, copy=False)


def load_aux(ds: xr.Dataset, channels: Sequence[str], sims: Sequence[int] | np.ndarray
             ) -> np.ndarray:
    """Static fields ``channels`` (over ``(sim, y, x)``) of simulations ``sims`` as
    ``(len(sims), C, y, x)`` float32: the cause fields a model's ``cause`` breaking input
    needs (:func:`surrogate.breaking.read_cause_fields`)."""
    try:
        return read_cause_fields(ds, channels, sims)
    except CauseFieldError as e:
        if e.missing:
            raise EvaluationError(f"data lack variable(s) {e.missing} that the model's "
                                  f"breaking input 'cause' needs (static fields "
                                  f"{list(channels)} over (sim, y, x))") from None
        raise EvaluationError(str(e)) from None


def frame_dt(ds: xr.Dataset) -> float:
    """Physical time between stored frames: ``attrs["dt"]`` or the ``time`` spacing."""
    if "dt" in ds.attrs:
        try:
            return float(np.asarray(ds.attrs["dt"]).reshape(-1)[0])
        except (TypeError, ValueError):
            pass
    if "time" in ds.coords and ds.sizes["time"] >= 2:
        t = np.asarray(ds["time"].values, dtype=np.float64)
        return float(t[1] - t[0])
    return 1.0


# -- windows -------------------------------------------------------------------------
def build_windows(record: TrainingRecord | dict, split: str, ds: xr.Dataset, T_in: int,
                  steps: int, stride: int | None = None,
                  max_windows: int | None = None) -> Windows:
    """The evaluation windows of ``split`` for data ``ds`` from the checkpoint's recorded
    split spec (``record``: its :class:`TrainingRecord`, or the raw metadata). Starts
    whose ``T_in + steps`` frames run past the data's end are dropped (a note says how
    many). ``stride`` overrides the spec's start stride (default: the spec's; 1 for the
    paper's test splits); ``max_windows`` keeps that many, evenly spread."""
    if not isinstance(record, TrainingRecord):
        record = TrainingRecord.from_dict(record)
    key = canonical_split(split)
    n_sims, n_time = int(ds.sizes["sim"]), int(ds.sizes["time"])
    if steps < 1:
        raise EvaluationError(f"steps must be >= 1, got {steps}")
    if T_in + steps > n_time:
        raise EvaluationError(f"the data have {n_time} frames, too few for T_in + steps = "
                              f"{T_in} + {steps}")
    if key == "all":
        sims = list(range(n_sims))
        start, stop, st = 0, n_time - T_in - steps + 1, stride or steps
    else:
        spec = record.splits
        if spec is None:
            raise EvaluationError(f"the checkpoint records no split spec for {split!r} "
                                  "(metadata['splits']); use --split all")
        rng = spec[key]
        if spec.n_sims != n_sims:
            raise EvaluationError(
                f"the checkpoint's splits refer to {spec.n_sims} simulations but the "
                f"data hold {n_sims}; pass the training data files (in the same order) or "
                "use --split all")
        if spec.n_time != n_time:
            raise EvaluationError(
                f"the checkpoint's splits refer to {spec.n_time} frames per "
                f"simulation but the data hold {n_time}; use --split all")
        if spec.T_in != T_in:
            raise EvaluationError(f"split spec was made for T_in={spec.T_in}, model has "
                                  f"T_in={T_in}")
        sims, start, stop, st = list(rng.sims), rng.start, rng.stop, stride or rng.stride
        bad = [s for s in sims if not 0 <= s < n_sims]
        if bad:
            raise EvaluationError(f"split {split!r} names sims {bad} outside the data's "
                                  f"{n_sims}")
    if st < 1:
        raise EvaluationError(f"stride must be >= 1, got {st}")
    starts = list(range(start, stop, st))
    fit = [t for t in starts if t + T_in + steps <= n_time]
    name = display_split(split)
    if not sims or not fit:
        raise EvaluationError(f"split {name!r} has no window with room for T_in + steps = "
                              f"{T_in} + {steps} frames"
                              + ("" if sims else " (it holds no simulations)"))
    note = (f"{len(starts) - len(fit)} of {len(starts)} start times dropped: no room for "
            f"{steps} steps") if len(fit) < len(starts) else ""
    return Windows.grid(sims, fit, T_in, steps, name, note).subset(max_windows)


def iter_batches(ds: xr.Dataset, windows: Windows, channels: Sequence[str],
                 batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:meth:`Windows.batches` of ``channels`` read from ``ds``."""
    return windows.batches(lambda s, t0, t1: load_frames(ds, channels, s, t0, t1),
                           batch_size)


# -- evaluation ----------------------------------------------------------------------
@dataclass
class RolloutResult:
    """Per-step metrics ``(n_windows, steps)`` of one model on one split, plus the first
    ``keep`` windows' history/prediction/truth for pictures."""

    split: str
    windows: Windows
    per_step: dict[str, np.ndarray]
    dt: float
    summary: dict[str, float] = field(default_factory=dict)
    examples: dict[str, Any] = field(default_factory=dict)

    def by_simulation(self, keys: Sequence[str] = ("rmse_velocity", "rmse")
                      ) -> dict[int, dict[str, float]]:
        """``sim -> {"n_windows", key: mean over its windows of the rollout RMSE}`` for
        the RMSE keys in ``keys`` this result has (per window the root of the step-mean
        of squares, as :attr:`summary`; so the window-weighted mean over simulations is
        ``summary[key]``)."""
        sims = np.asarray(self.windows.sims)
        whole = {k: M.per_window(k, self.per_step[k]) for k in keys if k in self.per_step}
        return {int(sim): {"n_windows": int((sims == sim).sum()),
                           **{k: float(v[sims == sim].mean()) for k, v in whole.items()}}
                for sim in np.unique(sims)}


def evaluate_split(model, ds: xr.Dataset, windows: Windows, batch_size: int = 32,
                   keep: int = 1, exported: bool = True) -> RolloutResult:
    """Roll ``model`` (a :class:`surrogate.Surrogate`) out on every window and score each
    predicted step against the truth (history excluded)."""
    layout = model.layout
    channels = list(layout.channels)
    velocity = tuple(layout.vectors[0]) if layout.vectors else None
    x, y = (ds[c].values if c in ds.coords else None for c in ("x", "y"))
    aux_channels = tuple(getattr(model, "aux_channels", ()))
    aux_all = (load_aux(ds, aux_channels, np.arange(ds.sizes["sim"])) if aux_channels
               else None)
    parts: dict[str, list[np.ndarray]] = {}
    examples: dict[str, Any] = {}
    for idx, hist, targ in iter_batches(ds, windows, channels, batch_size):
        aux = None if aux_all is None else torch.from_numpy(aux_all[windows.sims[idx]])
        with warnings.catch_warnings():  # a diverged rollout: the report warns, per split
            warnings.simplefilter("ignore", NonFiniteForecastWarning)
            pred = model.rollout(torch.from_numpy(hist), windows.steps, aux=aux,
                                 batch_size=batch_size, exported=exported).numpy()
        for k, v in M.rollout_metrics(pred, targ, channels, velocity, x, y).items():
            parts.setdefault(k, []).append(v)
        if idx[0] < keep:
            n = min(keep - idx[0], len(idx))
            for name, arr in (("history", hist), ("pred", pred), ("true", targ)):
                examples.setdefault(name, []).append(arr[:n])
    per_step = {k: np.concatenate(v) for k, v in parts.items()}
    examples = {k: np.concatenate(v) for k, v in examples.items()}
    examples.update({"sims": windows.sims[:keep], "starts": windows.starts[:keep],
                     "channels": channels, "x": x, "y": y,
                     "velocity": list(velocity) if velocity else None})
    dt = frame_dt(ds)
    return RolloutResult(windows.split, windows, per_step, dt, M.aggregate(per_step, dt),
                         examples)
