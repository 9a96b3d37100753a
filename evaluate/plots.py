"""Pictures of rollouts, errors and learned relaxation weights.

Figures are drawn on matplotlib's Agg canvas without pyplot (no global state, no
display needed, safe in worker processes) and saved as PNG; the rollout animation is a
GIF written with matplotlib's pillow writer. Fields are arrays ``(S, C, H, W)`` indexed
``[y, x]`` and drawn with ``origin="lower"`` (y up), the project's convention.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

__all__ = ["field_quantity", "rollout_panels", "error_vs_step", "relaxation_heatmaps",
           "symmetry_bars", "rollout_gif", "QUANTITIES"]

QUANTITIES = ("speed", "vorticity", "density")


def _figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _target(path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = _target(path)
    fig.savefig(path, dpi=fig.dpi)
    return path


def _uv(frames: np.ndarray, channels: Sequence[str], velocity: Sequence[str] | None):
    """The velocity components ``(u, v)`` of ``frames`` ``(..., C, H, W)`` (None, None
    without velocity channels)."""
    channels = list(channels)
    if velocity is None or not all(v in channels for v in velocity):
        return None, None
    return (frames[..., channels.index(velocity[0]), :, :],
            frames[..., channels.index(velocity[1]), :, :])


def field_quantity(frames: np.ndarray, channels: Sequence[str], quantity: str = "speed",
                   velocity: Sequence[str] | None = ("u", "v"), x=None, y=None
                   ) -> np.ndarray:
    """A scalar picture of ``frames`` ``(..., C, H, W)``: ``speed`` (velocity magnitude),
    ``vorticity`` (``dv/dx - du/dy``, central differences) or any channel by name."""
    channels = list(channels)
    f = np.asarray(frames, dtype=np.float64)
    if quantity in channels:
        return f[..., channels.index(quantity), :, :]
    u, v = _uv(f, channels, velocity)
    if u is None:
        raise ValueError(f"quantity {quantity!r} needs velocity channels; have {channels}")
    if quantity == "speed":
        return np.sqrt(u ** 2 + v ** 2)
    if quantity == "vorticity":
        dx = float(np.diff(x[:2])[0]) if x is not None and len(x) > 1 else 1.0
        dy = float(np.diff(y[:2])[0]) if y is not None and len(y) > 1 else 1.0
        return np.gradient(v, dx, axis=-1) - np.gradient(u, dy, axis=-2)
    raise ValueError(f"unknown quantity {quantity!r}; choose speed, vorticity or a channel")


def _extent(x, y, shape: tuple[int, ...]):
    h, w = shape[-2:]
    if x is None or y is None or len(x) < 2 or len(y) < 2:
        return (0, w, 0, h)
    dx, dy = float(x[1] - x[0]), float(y[1] - y[0])
    return (float(x[0]) - dx / 2, float(x[-1]) + dx / 2, float(y[0]) - dy / 2,
            float(y[-1]) + dy / 2)


def _quiver(ax, frame: np.ndarray, truth: np.ndarray, channels, velocity, extent,
            n: int = 12) -> None:
    """Velocity arrows of ``frame`` ``(C, H, W)``; the largest speed of ``truth`` (the
    same step) is drawn one arrow spacing long, so truth and predictions compare."""
    u, v = _uv(frame, channels, velocity)
    if u is None:
        return
    tu, tv = _uv(truth, channels, velocity)
    sp = np.sqrt(tu.astype(float) ** 2 + tv.astype(float) ** 2)
    speed = float(np.nanmax(sp)) if np.isfinite(sp).any() else None
    h, w = u.shape
    sy, sx = max(1, h // n), max(1, w // n)
    ys = np.arange(sy // 2, h, sy)
    xs = np.arange(sx // 2, w, sx)
    x0, x1, y0, y1 = extent
    X = x0 + (xs + 0.5) * (x1 - x0) / w
    Y = y0 + (ys + 0.5) * (y1 - y0) / h
    U, V = u[np.ix_(ys, xs)], v[np.ix_(ys, xs)]
    if np.isfinite(U).all() and np.isfinite(V).all() and np.abs(U).max() + np.abs(V).max() > 0:
        kw = {}
        if speed is not None and np.isfinite(speed) and speed > 0:
            # arrow length = speed / (speed per spacing), in data units of the axes
            kw = dict(scale=speed / (sx * (x1 - x0) / w), scale_units="xy", angles="xy")
        ax.quiver(X, Y, U, V, color="white", alpha=0.8, width=0.006, **kw)


def _color_range(vals: np.ndarray, sym: bool, empty: tuple[float, float] = (0.0, 1.0)
                 ) -> tuple[float, float]:
    """One colour range: 0.5-99.5 percentiles of the finite ``vals`` (symmetric about 0
    for ``sym``; ``empty`` when none is finite)."""
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return empty
    vmax = float(np.percentile(np.abs(vals) if sym else vals, 99.5))
    vmin = -vmax if sym else float(np.percentile(vals, 0.5))
    return vmin, (vmax if vmax > vmin else vmin + 1e-12)


def _error_max(errs: Sequence[np.ndarray], idx=slice(None)) -> float:
    """Largest ``|error|`` of frames ``idx`` over ``errs`` (1e-12 when none is finite)."""
    return max([float(np.nanmax(np.abs(e[idx]))) for e in errs if np.isfinite(e).any()]
               or [1e-12]) or 1e-12


def rollout_panels(true: np.ndarray, preds: Mapping[str, np.ndarray], path,
                   channels: Sequence[str], velocity: Sequence[str] | None = ("u", "v"),
                   steps: Sequence[int] | None = None, quantity: str = "speed",
                   x=None, y=None, dt: float = 1.0, title: str = "",
                   quiver: bool = True) -> Path:
    """Truth, each model's prediction and its error at chosen rollout ``steps``
    (1-based, each in ``1..S``, else ValueError; default 4 spread over the rollout), one
    column per step.

    ``true`` and each ``preds[label]`` are ``(S, C, H, W)``. Rows: truth, then per model
    its prediction and its error (prediction minus truth of ``quantity``). Truth and
    predictions share a colour scale; quivers of the velocity are drawn on top."""
    true = np.asarray(true)
    S = true.shape[0]
    if steps is None:
        steps = sorted({int(round(s)) for s in np.linspace(1, S, min(S, 4))})
    outside = [s for s in steps if not 1 <= s <= S]
    if outside or not steps:
        raise ValueError(f"rollout steps to show must be in 1..{S} (the rollout's length), "
                         f"got {list(steps)}")
    q_true = field_quantity(true, channels, quantity, velocity, x, y)
    q_pred = {k: field_quantity(p, channels, quantity, velocity, x, y)
              for k, p in preds.items()}
    ext = _extent(x, y, q_true.shape)
    sym = quantity == "vorticity"
    shown = [s - 1 for s in steps]
    field = ("RdBu_r" if sym else "viridis", *_color_range(
        np.concatenate([q[shown].ravel() for q in [q_true, *q_pred.values()]]), sym))
    errs = {k: q - q_true for k, q in q_pred.items()}
    emax = _error_max(list(errs.values()), shown)
    # rows: label, quantity, frames the arrows are drawn from, colour map and range
    rows = [("truth", q_true, true, field)]
    for k in preds:
        rows += [(k, q_pred[k], preds[k], field),
                 (f"{k} error", errs[k], None, ("RdBu_r", -emax, emax))]
    fig = _figure(2.3 * len(steps) + 1.2, 2.2 * len(rows) + 0.4)
    axes = fig.subplots(len(rows), len(steps), squeeze=False)
    for r, (label, q, src, (cmap, vmin, vmax)) in enumerate(rows):
        for c, s in enumerate(steps):
            ax = axes[r, c]
            im = ax.imshow(q[s - 1], origin="lower", extent=ext, cmap=cmap, vmin=vmin,
                           vmax=vmax)
            if quiver and src is not None:
                _quiver(ax, src[s - 1], true[s - 1], channels, velocity, ext)
            ax.set(xticks=[], yticks=[])
            if r == 0:
                ax.set_title(f"step {s} (t+{s * dt:g})", fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
        fig.colorbar(im, ax=list(axes[r]), shrink=0.85, pad=0.01)
    fig.suptitle(title or f"rollout: {quantity}", fontsize=11)
    return _save(fig, path)


def error_vs_step(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path,
                  metric: str = "RMSE", dt: float | None = None, title: str = "",
                  logy: bool = False, baselines: Sequence[str] = ()) -> Path:
    """Error against rollout step for several models on one axes: ``curves[label] =
    (mean (S,), std (S,))`` over windows; the band is +- one standard deviation. Labels
    in ``baselines`` (e.g. persistence) are drawn as dashed black lines without a band."""
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    for label, (mean, std) in curves.items():
        mean, std = np.asarray(mean, float), np.asarray(std, float)
        s = np.arange(1, len(mean) + 1)
        xs = s * dt if dt else s
        if label in baselines:
            ax.plot(xs, mean, ls="--", color="k", lw=1.5, label=label)
            continue
        line, = ax.plot(xs, mean, marker="o", ms=3, label=label)
        ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel(f"lead time (dt = {dt:g})" if dt else "rollout step")
    ax.set_ylabel(metric)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"{metric} vs rollout step", fontsize=10)
    return _save(fig, path)


def _group_heatmap(ax, fig, group) -> None:
    """One panel: per relaxed group-conv layer and bank, ``w_l(g) / mean_g w_l(g) - 1``."""
    rows, labels = [], []
    for l in group:
        m = np.asarray(l.matrix, float)
        mean = m.mean(axis=1, keepdims=True)
        mean = np.where(np.abs(mean) > 1e-12, mean, 1.0)
        rows += list(m / mean - 1)
        labels += [f"{l.name} l{b}" if m.shape[0] > 1 else l.name for b in range(m.shape[0])]
    arr = np.array(rows)
    lim = float(np.abs(arr).max()) or 1e-6
    im = ax.imshow(arr, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim), aspect="auto")
    ax.set_xticks(range(arr.shape[1]), group[0].element_names or range(arr.shape[1]),
                  fontsize=8)
    if len(labels) <= 40:
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_title("relaxed group conv: w(g)/mean - 1", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)


def relaxation_heatmaps(layers, path, title: str = "") -> Path:
    """Heatmaps of the learned relaxation weights ``layers`` of
    :func:`evaluate.equivariance.relaxation_summary`: one panel for every relaxed group
    conv (:func:`_group_heatmap`; 0 everywhere = equivariant), then per other layer its
    ``profile`` map (e.g. ``k x k`` over kernel offsets), y up, on one colour scale;
    1x1 maps and combo weights are left out."""
    group = [l for l in layers if l.kind == "group"]
    # a 1x1 kernel has a single position: nothing to show (it cannot break the symmetry)
    # (a combo net's two output weights are in the report's table, not drawn)
    steer = [l for l in layers if l.kind not in ("group", "combo")
             and np.asarray(l.matrix).size > 1]
    first = 1 if group else 0
    n_panels = first + len(steer)
    if n_panels == 0:
        fig = _figure(4, 2)
        fig.text(0.5, 0.5, "no relaxed layers", ha="center", va="center")
        return _save(fig, path)
    ncol = min(n_panels, 4)
    nrow = int(np.ceil(n_panels / ncol))
    fig = _figure(3.2 * ncol + 0.5, 3.0 * nrow + (0.02 * sum(l.matrix.shape[0]
                                                           for l in group)) + 0.6)
    if group:
        _group_heatmap(fig.add_subplot(nrow, ncol, 1), fig, group)
    smax = max([float(np.nanmax(np.asarray(l.matrix, float))) for l in steer] + [0.0])
    smax = smax if smax > 0 else 1e-6
    for i, l in enumerate(steer):
        ax = fig.add_subplot(nrow, ncol, first + i + 1)
        m = np.atleast_2d(np.asarray(l.matrix, float))
        # kernel index [i, j] multiplies the input at offset (y + i - k//2, x + j - k//2):
        # drawn with y up like the fields
        im = ax.imshow(m, cmap="magma", vmin=0, vmax=smax, origin="lower")
        ax.set_title(f"{l.name}\nrel. dev. {l.relative_deviation:.3g}", fontsize=7)
        ax.set(xticks=[], yticks=[])
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(title or "learned relaxation weights", fontsize=10)
    return _save(fig, path)


def _element_bars(ax, v) -> None:
    """Bars of ``v.errors`` (log scale; kept subgroup blue, the rest red) and the
    threshold as a dashed line; zeros and NaNs sit on the floor."""
    names = list(v.errors)
    vals = np.array([v.errors[k] for k in names], float)
    pos = vals[np.isfinite(vals) & (vals > 0)]
    floor = min([float(pos.min()) if pos.size else v.threshold, v.threshold]) / 10
    heights = np.where(np.isfinite(vals) & (vals > 0), vals, floor)
    colors = ["tab:blue" if k in v.subgroup else "tab:red" for k in names]
    ax.bar(range(len(names)), heights - floor, bottom=floor, color=colors)
    ax.axhline(v.threshold, color="k", ls="--", lw=1, label=f"threshold {v.threshold:.3g}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("e_g (step-relative)", fontsize=8)
    ax.legend(fontsize=7)


def _irrep_stack(ax, layers) -> None:
    """One stacked bar per relaxed group conv: its energy fraction per irrep."""
    irreps = list(dict.fromkeys(k for l in layers for k in l.irreps))
    bottom = np.zeros(len(layers))
    for k in irreps:
        frac = np.array([l.irreps.get(k, 0.0) for l in layers])
        ax.bar(range(len(layers)), frac, bottom=bottom, label=k)
        bottom += frac
    ax.set_xticks(range(len(layers)), [l.name for l in layers], rotation=90, fontsize=6)
    ax.set_ylim(0, 1)
    ax.set_ylabel("energy fraction", fontsize=8)
    ax.legend(fontsize=6)


def symmetry_bars(verdicts, path, title: str = "") -> Path:
    """Per model (a row; ``verdicts``: label -> :class:`evaluate.discovery.SymmetryVerdict`)
    its per-element equivariance errors with the keep threshold, and, for models with
    relaxed group convs, a stacked bar of each layer's irrep energy fractions."""
    items = list(verdicts.items())
    ncol = 2 if any(l.irreps for _, v in items for l in v.layers) else 1
    fig = _figure(4.5 * ncol + 0.5, 2.8 * len(items) + 0.4)
    for i, (label, v) in enumerate(items):
        ax = fig.add_subplot(len(items), ncol, i * ncol + 1)
        _element_bars(ax, v)
        ax.set_title(f"{label}: keeps {v.subgroup_name}", fontsize=9)
        group = [l for l in v.layers if l.irreps]
        if group:
            _irrep_stack(fig.add_subplot(len(items), ncol, i * ncol + 2), group)
    fig.suptitle(title or "symmetry the models keep", fontsize=10)
    return _save(fig, path)


def rollout_gif(true: np.ndarray, pred: np.ndarray, path, channels: Sequence[str],
                velocity: Sequence[str] | None = ("u", "v"), quantity: str = "speed",
                x=None, y=None, dt: float = 1.0, fps: int = 4, title: str = "",
                history: np.ndarray | None = None) -> Path:
    """An animated GIF of a rollout: prediction next to the truth (and their difference),
    one frame per step. ``true``/``pred`` ``(S, C, H, W)``; optional ``history``
    ``(T, C, H, W)`` frames are shown first, labelled as given (identical in both)."""
    true, pred = np.asarray(true), np.asarray(pred)
    n_hist = 0 if history is None else len(history)
    if history is not None:
        true, pred = np.concatenate([history, true]), np.concatenate([history, pred])
    qt = field_quantity(true, channels, quantity, velocity, x, y)
    qp = field_quantity(pred, channels, quantity, velocity, x, y)
    sym = quantity == "vorticity"
    field = ("RdBu_r" if sym else "viridis",
             *_color_range(qt, sym, empty=(-1.0 if sym else 0.0, 1.0)))
    err = qp - qt
    emax = _error_max([err])
    ext = _extent(x, y, qt.shape)
    fig = _figure(9.0, 3.3)
    axes = fig.subplots(1, 3)
    panels = [(qt, "truth", field), (qp, "prediction", field),
              (err, "prediction - truth", ("RdBu_r", -emax, emax))]
    ims = []
    for ax, (q, name, (cmap, vmin, vmax)) in zip(axes, panels):
        ims.append(ax.imshow(q[0], origin="lower", extent=ext, cmap=cmap, vmin=vmin,
                             vmax=vmax))
        ax.set_title(name, fontsize=9)
        ax.set(xticks=[], yticks=[])
    fig.colorbar(ims[1], ax=list(axes[:2]), shrink=0.8)
    fig.colorbar(ims[2], ax=axes[2], shrink=0.8)
    head = fig.suptitle("", fontsize=10)

    def update(i: int):
        for im, (q, _, _) in zip(ims, panels):
            im.set_data(q[i])
        s = i - n_hist + 1
        tag = f"history {i + 1}/{n_hist}" if s < 1 else f"step {s} (t+{s * dt:g})"
        head.set_text(f"{title + ': ' if title else ''}{quantity}, {tag}")
        return ims

    update(0)
    anim = FuncAnimation(fig, update, frames=len(qt), blit=False)
    path = _target(path)
    anim.save(str(path), writer=PillowWriter(fps=fps), dpi=72)
    return path
