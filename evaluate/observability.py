"""Observability probe: can the cause of a dataset's symmetry breaking be read from what
a model is given?

A strict (equivariant) model can still fit symmetry-breaking data exactly when the
breaking shows in its input: if the buoyancy magnitude of a run can be read from one
frame, the map history -> next frame stays equivariant and relaxation has nothing to
learn. The probe fits a ridge regression of the breaking cause of each simulation on

* ``frame``: six rotation- and mirror-invariant statistics of ONE given frame (mass,
  spread and peak of the density; mean and peak kinetic energy; enstrophy), and on
* ``orientation``: the inflow wall alone (one-hot), i.e. what a layer that knows
  directions (a relaxed one) could use and a strict one cannot, and on
* ``position``: the inflow centre ``(x, y)`` alone, and optionally on
* ``invariant``: ONE frame through a strict (D4-invariant) network fitted to the cause
  (:mod:`evaluate.invariant_probe`): what a strict model can read, which is more than
  six statistics,

fitted on the training simulations and scored by R^2 on the held-out ones (1: read
perfectly; 0: no better than the training mean; below 0: worse).

The cause per simulation (:func:`breaking_cause`): the settling velocity's component
along the buoyancy (``settling``: how much the drift opposes or helps the plume; in
``drift``, along the y axis of the turned stirred start), else
the log buoyancy magnitude where it varies between walls (``rotation``,
``breaking_sweep``); none where every wall has the same magnitudes (``symmetric``: the
runs are rotations of each other) or every run has one orientation (``boundary``,
``translation``: their breaking is the same in every run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["ObservabilityResult", "breaking_cause", "frame_statistics", "observability",
           "ridge_r2"]

#: the invariant statistics of one frame, in the order of :func:`frame_statistics`
STATISTICS = ("log mass", "density spread", "log peak density", "log mean kinetic energy",
              "log peak speed", "log enstrophy")


@dataclass
class ObservabilityResult:
    """R^2 on held-out simulations of the breaking cause ``cause`` from ``frame``
    (statistics of frame ``f``, keyed by ``f``), ``orientation`` and ``position``;
    ``note`` says why a value is missing."""

    cause: str
    n_train: int
    n_test: int
    frame: dict[int, float] = field(default_factory=dict)
    invariant: dict[int, float] = field(default_factory=dict)
    orientation: float | None = None
    position: float | None = None
    note: str = ""

    def line(self) -> str:
        """One line for a report: ``cause: R^2 from one frame ..., from orientation ...``."""
        if not self.frame:
            return f"{self.cause}: {self.note}"
        fr = ", ".join(f"frame {f} {r:.3f}" for f, r in self.frame.items())
        o = "–" if self.orientation is None else f"{self.orientation:.3f}"
        p = "–" if self.position is None else f"{self.position:.3f}"
        inv = ""
        if self.invariant:
            inv = "; one frame through a strict network (" + ", ".join(
                f"frame {f} {r:.3f}" for f, r in self.invariant.items()) + ")"
        return (f"{self.cause}, R² on {self.n_test} held-out runs: one frame ({fr}){inv}; "
                f"orientation alone {o}; position alone {p}")


def breaking_cause(ds) -> tuple[str, np.ndarray | None]:
    """``(name, values (sim,))`` of the breaking cause of each simulation of dataset
    ``ds`` (None when no cause varies): the settling velocity along the unit buoyancy
    ``w_s . b / |b|`` when any run settles (along the start's y axis turned by
    ``initial_turns`` when nothing is buoyant: ``drift``; its quarter turns both give 0,
    so the probe asks whether the settling runs with or against the start's axis, not
    to which side), else ``log |b|`` when it varies."""
    spec = json.loads(ds.attrs.get("spec", "{}") or "{}")
    sims = spec.get("sims", [])
    idx = np.asarray(ds["sim"].values, int)
    b = np.stack([np.asarray(ds["buoyancy_vx"].values, float),
                  np.asarray(ds["buoyancy_vy"].values, float)], -1)
    settling = [sims[i].get("settling") if i < len(sims) else None for i in idx]
    if any(s is not None for s in settling):
        w = np.array([s if s is not None else (0.0, 0.0) for s in settling], float)
        if np.linalg.norm(b, axis=1).max() == 0:     # no buoyancy: a turned stirred start
            turns = np.array([sims[i].get("initial_turns", 0) if i < len(sims) else 0
                              for i in idx], float) * (np.pi / 2)   # counter-clockwise
            unit = np.round(np.stack([-np.sin(turns), np.cos(turns)], -1))
            return "settling velocity along the start's turned y axis", (w * unit).sum(axis=1)
        unit = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-30)
        return "settling velocity along the buoyancy", (w * unit).sum(axis=1)
    if np.linalg.norm(b, axis=1).max() == 0:
        return "none (nothing settles and nothing is buoyant)", None
    logm = np.log(np.maximum(np.linalg.norm(b, axis=1), 1e-30))
    if "wall" in ds.coords and len(np.unique(np.asarray(ds["wall"].values))) == 1:
        return "none (one orientation: the breaking is the same in every run)", None
    if "magnitude_index" in ds.coords and "wall" in ds.coords:
        j = np.asarray(ds["magnitude_index"].values, int)
        groups = [logm[j == m] for m in np.unique(j) if m >= 0]
        if groups and all(len(g) > 1 and np.ptp(g) <= 1e-9 for g in groups):
            return "none (every wall has the same magnitudes)", None  # wall-independent
    if np.ptp(logm) > 1e-9:
        return "log buoyancy magnitude", logm
    return "none", None


def frame_statistics(u: np.ndarray, v: np.ndarray, density: np.ndarray,
                     dx: float = 1.0) -> np.ndarray:
    """Six statistics of one frame per simulation that no rotation or mirror of the grid
    changes, ``(n, 6)`` (see :data:`STATISTICS`), from ``u, v, density`` ``(n, y, x)``.
    Logs of positive quantities, so a regression is linear in orders of magnitude."""
    eps = 1e-12
    n, H, W = density.shape
    yy, xx = np.meshgrid(np.arange(H) * dx, np.arange(W) * dx, indexing="ij")
    mass = density.sum(axis=(1, 2))
    wgt = density / np.maximum(mass, eps)[:, None, None]
    cx, cy = (wgt * xx).sum(axis=(1, 2)), (wgt * yy).sum(axis=(1, 2))
    spread = np.sqrt((wgt * ((xx - cx[:, None, None]) ** 2
                             + (yy - cy[:, None, None]) ** 2)).sum(axis=(1, 2)))
    ke = u ** 2 + v ** 2
    vort = np.gradient(v, dx, axis=2) - np.gradient(u, dx, axis=1)
    return np.stack([np.log(mass + eps), spread, np.log(density.max(axis=(1, 2)) + eps),
                     np.log(ke.mean(axis=(1, 2)) + eps), 0.5 * np.log(ke.max(axis=(1, 2)) + eps),
                     np.log((vort ** 2).mean(axis=(1, 2)) + eps)], axis=1)


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination of ``pred`` for ``y`` (nan when ``y`` is constant)."""
    ss = ((y - y.mean()) ** 2).sum()
    return float(1 - ((y - pred) ** 2).sum() / ss) if ss > 0 else float("nan")


def ridge_r2(X: np.ndarray, y: np.ndarray, train: np.ndarray, lam: float = 1e-3) -> float:
    """R^2 on the rows not in ``train`` of a ridge regression ``y ~ X`` (features
    standardised on the training rows, intercept unpenalised, penalty ``lam``)."""
    test = ~train
    mu, sd = X[train].mean(axis=0), X[train].std(axis=0)
    keep = sd > 1e-12
    Z = (X[:, keep] - mu[keep]) / sd[keep]
    Zt, yt = Z[train], y[train]
    coef = np.linalg.solve(Zt.T @ Zt + lam * len(yt) * np.eye(Zt.shape[1]),
                           Zt.T @ (yt - yt.mean())) if Zt.shape[1] else np.zeros(0)
    return r2(y[test], yt.mean() + Z[test] @ coef)


def observability(ds, frames: Sequence[int] = (2, 5), lam: float = 1e-3,
                  invariant: bool = False) -> ObservabilityResult:
    """The probe on dataset ``ds`` (an ``xarray.Dataset`` of the relaxflow schema):
    R^2 of :func:`breaking_cause` on the held-out simulations (``heldout``) from the
    statistics of frame ``f`` for each ``f`` in ``frames``, from the inflow wall alone
    and from the inflow position alone; with ``invariant`` also from frame ``f``
    through a strict network fitted on the training runs
    (:func:`evaluate.invariant_probe.invariant_r2`, ~1 min on a CPU core at 32x32)."""
    name, y = breaking_cause(ds)
    held = np.asarray(ds["heldout"].values, bool) if "heldout" in ds.coords else None
    if y is None:
        return ObservabilityResult(name, 0, 0, note="no breaking cause varies between runs")
    if held is None or held.all() or not held.any() or held.sum() < 2:
        return ObservabilityResult(name, 0, 0, note="needs held-out and training runs")
    train = ~held
    if np.ptp(y[held]) <= 1e-12:
        return ObservabilityResult(name, int(train.sum()), int(held.sum()),
                                   note="the cause is the same on every held-out run")
    res = ObservabilityResult(name, int(train.sum()), int(held.sum()))
    dx = float(ds.attrs.get("box_size", ds.sizes["x"])) / ds.sizes["x"]
    for f in frames:
        if f >= ds.sizes["time"]:
            continue
        fr = {k: np.asarray(ds[k].isel(time=f).values, float) for k in ("u", "v", "density")}
        res.frame[int(f)] = ridge_r2(frame_statistics(fr["u"], fr["v"], fr["density"], dx),
                                     y, train, lam)
    if invariant:
        from .invariant_probe import invariant_r2
        res.invariant = invariant_r2(ds, y, train, frames)
    if "wall" in ds.coords and (np.asarray(ds["wall"].values) >= 0).any():
        wall = np.asarray(ds["wall"].values, int)
        res.orientation = ridge_r2(np.eye(4)[wall % 4].astype(float), y, train, lam)
    pos = np.stack([np.asarray(ds["inflow_x"].values, float),
                    np.asarray(ds["inflow_y"].values, float)], -1)
    res.position = ridge_r2(pos, y, train, lam)
    return res
