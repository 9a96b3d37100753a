"""Rollout metrics: pure functions on arrays of predicted and true frames.

Every function takes ``pred`` and ``true`` shaped ``(B, S, C, H, W)`` (B windows or
simulations, S rollout steps, C channels, an ``H x W`` grid indexed ``[y, x]``) as numpy
arrays or torch tensors and computes in float64. The history frames a forecast started
from are *never* part of ``pred``/``true``: step 1 is the first predicted frame
(counting the ``T_in`` given frames flatters the scores, a known PDEBench pitfall).

Per-step metrics return arrays ``(B, S)`` (or ``(B, S, C)`` per channel);
:func:`aggregate` turns them into one number per window and a mean +- std over windows.
Each function's docstring gives its definition (the table of ``docs/evaluate.md`` too):
RMSE (the paper's, in physical units; also per variable and over the velocity
components only, what the paper, which predicts velocity alone, reports), VRMSE (The
Well), the kinetic-energy spectrum error, the RMS divergence and the correlation time
(PDEArena's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = [
    "as_array", "per_window", "rmse", "rmse_per_channel", "rmse_rollout", "vrmse",
    "energy_spectrum", "spectrum_error", "divergence", "divergence_rms", "correlation",
    "correlation_time", "CorrelationTime", "rollout_metrics", "aggregate", "VRMSE_EPS",
    "CORRELATION_THRESHOLD",
]

VRMSE_EPS = 1e-7
CORRELATION_THRESHOLD = 0.8
SPECTRUM_FLOOR = 1e-8


def as_array(x: Any) -> np.ndarray:
    """A float64 numpy copy of an array or (possibly GPU) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    p, t = as_array(pred), as_array(true)
    if p.shape != t.shape:
        raise ValueError(f"pred and true differ in shape: {p.shape} vs {t.shape}")
    if p.ndim != 5:
        raise ValueError(f"expected (B, S, C, H, W) arrays, got shape {p.shape}")
    return p, t


# -- errors --------------------------------------------------------------------------
def rmse(pred, true, channels: Sequence[int] | None = None) -> np.ndarray:
    """The paper's RMSE per window and step, ``(B, S)``: ``sqrt`` of the mean squared
    error over space and the selected ``channels`` (all by default)."""
    p, t = _pair(pred, true)
    if channels is not None:
        idx = list(channels)
        p, t = p[:, :, idx], t[:, :, idx]
    return np.sqrt(((p - t) ** 2).mean(axis=(2, 3, 4)))


def rmse_per_channel(pred, true) -> np.ndarray:
    """RMSE of each channel (variable) per window and step: ``(B, S, C)``."""
    p, t = _pair(pred, true)
    return np.sqrt(((p - t) ** 2).mean(axis=(3, 4)))


def rmse_rollout(pred, true, channels: Sequence[int] | None = None) -> np.ndarray:
    """RMSE over a whole rollout per window, ``(B,)``: ``sqrt`` of the mean over steps
    of the per-step MSE (how the paper aggregates a 20-step rollout)."""
    return np.sqrt((rmse(pred, true, channels) ** 2).mean(axis=1))


def vrmse(pred, true, eps: float = VRMSE_EPS) -> np.ndarray:
    """The Well's variance-scaled RMSE per window, step and channel, ``(B, S, C)``:
    ``sqrt(mean_{H,W}((pred - true)^2) / (var_{H,W}(true) + eps))``; 1.0 is roughly the
    score of predicting the spatial mean."""
    p, t = _pair(pred, true)
    return np.sqrt(((p - t) ** 2).mean(axis=(3, 4)) / (t.var(axis=(3, 4)) + eps))


# -- spectra -------------------------------------------------------------------------
def energy_spectrum(u, v) -> np.ndarray:
    """Radially binned kinetic-energy spectrum of velocity ``(..., H, W)`` components:
    ``(..., K)`` with ``K = min(H, W) // 2``; entry ``k - 1`` holds the energy of integer
    wavenumbers ``k - 1/2 <= |k'| < k + 1/2`` (``k >= 1``; ``k = 0``, the mean flow, is
    left out; the FFT treats the box as periodic). Parseval-normalised, so the spectrum
    sums (with ``k = 0`` and the corners beyond ``K``) to ``1/2 mean(u^2+v^2)``."""
    u, v = as_array(u), as_array(v)
    h, w = u.shape[-2:]
    e = 0.5 * (np.abs(np.fft.fft2(u)) ** 2 + np.abs(np.fft.fft2(v)) ** 2) / (h * w) ** 2
    ky = np.fft.fftfreq(h) * h
    kx = np.fft.fftfreq(w) * w
    kr = np.rint(np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)).astype(int).reshape(-1)
    nbins = min(h, w) // 2
    flat = e.reshape(-1, h * w)
    out = np.zeros((flat.shape[0], nbins))
    for k in range(1, nbins + 1):
        out[:, k - 1] = flat[:, kr == k].sum(axis=1)
    return out.reshape(e.shape[:-2] + (nbins,))


def spectrum_error(pred, true, velocity: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Mean over the wavenumber bins of ``|log10(E_pred(k) / E_true(k))|``, per window and
    step: ``(B, S)``. ``velocity`` names the channel indices of the (u, v) components.
    Both spectra are floored at ``1e-8`` times the true kinetic energy, so bins empty in
    both count as equal; 0 means identical spectra, 1 a typical bin off by a factor of
    10; too smooth a prediction shows as a deficit at high ``k``."""
    p, t = _pair(pred, true)
    i, j = velocity
    ep = energy_spectrum(p[:, :, i], p[:, :, j])
    et = energy_spectrum(t[:, :, i], t[:, :, j])
    total = 0.5 * (t[:, :, i] ** 2 + t[:, :, j] ** 2).mean(axis=(-2, -1))
    floor = np.maximum(SPECTRUM_FLOOR * total, 1e-30)[..., None]
    return np.abs(np.log10(np.maximum(ep, floor) / np.maximum(et, floor))).mean(axis=-1)


# -- divergence ----------------------------------------------------------------------
def _spacing(coord, n: int) -> float:
    if coord is None:
        return 1.0
    if np.ndim(coord) == 0:
        return float(coord)
    c = np.asarray(coord, dtype=np.float64)
    if c.size != n:
        raise ValueError(f"coordinate has {c.size} values for an axis of {n} cells")
    if n < 2:
        return 1.0
    d = np.diff(c)
    if not np.allclose(d, d[0], rtol=1e-4, atol=0):
        raise ValueError("divergence needs a uniform grid; the coordinate spacing varies")
    return float(d[0])


def divergence(u, v, x=None, y=None) -> np.ndarray:
    """``du/dx + dv/dy`` of cell-centred velocity components ``(..., H, W)`` (indexed
    ``[y, x]``): central differences inside, one-sided at the walls. ``x``/``y`` are the
    coordinate values (or a scalar spacing); spacing 1 when omitted."""
    u, v = as_array(u), as_array(v)
    h, w = u.shape[-2:]
    return np.gradient(u, _spacing(x, w), axis=-1) + np.gradient(v, _spacing(y, h), axis=-2)


def divergence_rms(fields, velocity: tuple[int, int] = (0, 1), x=None, y=None) -> np.ndarray:
    """RMS over the grid of the divergence of the velocity in ``fields`` ``(B, S, C, H, W)``:
    ``(B, S)``. The truth's value is the floor a perfect prediction would reach on this
    grid (velocity interpolated from a staggered solver grid is divergence-free only to
    interpolation error)."""
    f = as_array(fields)
    d = divergence(f[:, :, velocity[0]], f[:, :, velocity[1]], x, y)
    return np.sqrt((d ** 2).mean(axis=(-2, -1)))


# -- correlation ---------------------------------------------------------------------
def correlation(pred, true) -> np.ndarray:
    """Pearson correlation over the grid per channel, averaged over channels: ``(B, S)``.
    A constant channel (zero variance in pred or truth) counts as correlation 0 unless
    both are equal constants (then 1)."""
    p, t = _pair(pred, true)
    pc = p - p.mean(axis=(3, 4), keepdims=True)
    tc = t - t.mean(axis=(3, 4), keepdims=True)
    num = (pc * tc).sum(axis=(3, 4))
    den = np.sqrt((pc ** 2).sum(axis=(3, 4)) * (tc ** 2).sum(axis=(3, 4)))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    same = (den == 0) & np.all(np.isclose(p, t), axis=(3, 4))
    return np.where(same, 1.0, r).mean(axis=2)


@dataclass(frozen=True)
class CorrelationTime:
    """Per window: ``steps`` (leading steps with correlation >= threshold), ``censored``
    (True where the correlation never dropped, so ``steps`` is a lower bound) and
    ``time`` (``steps * dt``)."""

    steps: np.ndarray
    censored: np.ndarray
    time: np.ndarray


def correlation_time(corr, threshold: float = CORRELATION_THRESHOLD,
                     dt: float = 1.0) -> CorrelationTime:
    """Correlation time of correlation curves ``(B, S)`` (or ``(S,)``): the number of
    leading steps whose correlation stays ``>= threshold``, i.e. the 0-based index of the
    first step below it; the full rollout length, censored, where it never drops."""
    c = np.atleast_2d(as_array(corr))
    below = c < threshold
    censored = ~below.any(axis=1)
    steps = np.where(censored, c.shape[1], below.argmax(axis=1))
    return CorrelationTime(steps.astype(int), censored, steps * float(dt))


# -- everything at once --------------------------------------------------------------
def rollout_metrics(pred, true, channels: Sequence[str] = ("u", "v", "density"),
                    velocity: tuple[str, str] | None = ("u", "v"), x=None, y=None,
                    ) -> dict[str, np.ndarray]:
    """Every per-step metric of a batch of rollouts, each ``(B, S)``.

    Keys: ``rmse`` (all channels), ``rmse_<channel>`` for each channel, ``vrmse``
    (channel mean) and ``vrmse_<channel>``, ``corr``; when ``velocity`` names two of
    ``channels``: ``rmse_velocity``, ``spectrum_error``, ``div_pred`` and ``div_true``
    (RMS divergence of prediction and truth)."""
    p, t = _pair(pred, true)
    channels = list(channels)
    if len(channels) != p.shape[2]:
        raise ValueError(f"{len(channels)} channel names {channels} for {p.shape[2]} "
                         "channels")
    per, vr = rmse_per_channel(p, t), vrmse(p, t)
    out = {"rmse": rmse(p, t), **{f"rmse_{n}": per[:, :, c] for c, n in enumerate(channels)},
           "vrmse": vr.mean(axis=2), **{f"vrmse_{n}": vr[:, :, c] for c, n in enumerate(channels)},
           "corr": correlation(p, t)}
    if velocity is not None and all(v in channels for v in velocity):
        vi = (channels.index(velocity[0]), channels.index(velocity[1]))
        out["rmse_velocity"] = rmse(p, t, vi)
        out["spectrum_error"] = spectrum_error(p, t, vi)
        out["div_pred"] = divergence_rms(p, vi, x, y)
        out["div_true"] = divergence_rms(t, vi, x, y)
    return out


def per_window(key: str, per_step) -> np.ndarray:
    """``(n_windows,)`` whole-rollout value of metric ``key`` from its ``(n_windows,
    steps)`` per-step values: the root of the step-mean of squares for RMSE-type keys
    (``rmse*``, the paper's rollout RMSE), the step mean otherwise."""
    a = as_array(per_step)
    return np.sqrt((a ** 2).mean(axis=1)) if key.startswith("rmse") else a.mean(axis=1)


def aggregate(per_step: dict[str, np.ndarray], dt: float = 1.0,
              threshold: float = CORRELATION_THRESHOLD) -> dict[str, float]:
    """Whole-rollout numbers from :func:`rollout_metrics` output: per key the mean over
    windows of :func:`per_window` (``<key>``) and its standard deviation (``<key>_std``);
    ``corr_time_steps`` / ``corr_time`` (mean over windows, steps and physical time),
    ``corr_time_censored`` (fraction of windows that never dropped below the threshold)
    and ``n_windows``."""
    out: dict[str, float] = {}
    n = 0
    for key, a in per_step.items():
        w = per_window(key, a)
        n = w.shape[0]
        out[key] = float(w.mean())
        out[f"{key}_std"] = float(w.std())
    if "corr" in per_step:
        ct = correlation_time(per_step["corr"], threshold, dt)
        out["corr_time_steps"] = float(ct.steps.mean())
        out["corr_time_steps_std"] = float(ct.steps.std())
        out["corr_time"] = float(ct.time.mean())
        out["corr_time_censored"] = float(ct.censored.mean())
    out["n_windows"] = int(n)
    return out
