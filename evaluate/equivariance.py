"""Equivariance analysis: of a model on data, of the data itself, and of the relaxation
weights a relaxed model learned ("which symmetry did it discover?").

Every group action goes through :func:`surrogate.symmetry.transform_fields` (the one
convention of the project): ``g = r^k s^m`` mirrors ``x -> -x`` when ``m = 1`` and then
turns by ``k`` counter-clockwise quarter turns, rotating vector components with the grid.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from surrogate.groups import Group, get_group
from surrogate.symmetry import FieldLayout, transform_fields

from .rollout import first_line

__all__ = [
    "EquivarianceError", "equivariance_error", "element_ratios", "model_equivariance_error",
    "one_step_fn", "model_layout", "batched", "layer_group", "subgroup_name",
    "data_equivariance_error", "element_name", "subgroups", "LayerRelaxation",
    "relaxation_summary", "collect_relaxation_weights", "DISCOVERY_TOLERANCE",
]

#: relative violation below which a relaxed group conv counts as symmetric under a subgroup
DISCOVERY_TOLERANCE = 0.05


def element_name(g: tuple[int, int], group: Group | None = None) -> str:
    """``e``, ``r``, ``r2``, ``s``, ``r3s`` ...; rotations counted in steps of
    ``360 / N`` degrees (``group.n_rotations = N``, quarter turns for C4/D4)."""
    k, m = g
    rot = "" if k == 0 else ("r" if k == 1 else f"r{k}")
    return rot + "s" if m else rot or "e"


# -- model equivariance --------------------------------------------------------------
@dataclass
class EquivarianceError:
    """``mean`` over the evaluated elements of the mean over samples of
    ``||f(g x) - g f(x)|| / ||f(x)||``; ``per_element`` maps element names to that
    sample mean; ``group`` the group the elements came from."""

    mean: float
    per_element: dict[str, float]
    group: str
    note: str = ""


@torch.no_grad()
def element_ratios(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                   layout: FieldLayout, group: str | Group = "C4",
                   scale: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                   include_identity: bool = False) -> dict[tuple[int, int], torch.Tensor]:
    """Per grid-exact element ``g``: ``||f(g x) - g f(x)||_2 / scale(x, f(x))``, ``(B,)``.

    ``fn: (B, T, C, H, W) -> (B, C, H, W)``; norms over ``C, H, W``; ``scale`` defaults
    to ``||f(x)||_2`` per sample. Both ``x`` and the output transform as ``layout`` says
    (vector components rotate with the grid). On a non-square grid the odd quarter-turn
    elements (quarter turns, diagonal mirrors) are left out, and so is the identity
    unless ``include_identity``."""
    grp = get_group(group) if isinstance(group, str) else group
    if x.ndim != 5:
        raise ValueError(f"x must be (B, T, C, H, W), got shape {tuple(x.shape)}")
    square = x.shape[-1] == x.shape[-2]
    fx = fn(x)
    den = fx.flatten(1).norm(dim=1) if scale is None else scale(x, fx)
    den = den.clamp_min(1e-30)
    out: dict[tuple[int, int], torch.Tensor] = {}
    for g in grp.grid_elements:
        if (g == (0, 0) and not include_identity) or (not square and grp.quarter_turns(g) % 2):
            continue
        k, flip = grp.quarter_turns(g), bool(g[1])
        lhs = fn(transform_fields(x, layout, k, flip))
        out[g] = (lhs - transform_fields(fx, layout, k, flip)).flatten(1).norm(dim=1) / den
    return out


def equivariance_error(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       layout: FieldLayout, group: str | Group = "C4",
                       include_identity: bool = False) -> EquivarianceError:
    """Equivariance error of ``fn: (B, T, C, H, W) -> (B, C, H, W)`` on inputs ``x``.

    Mean over the grid-exact elements ``g`` of ``group`` (C4: the 3 non-trivial quarter
    turns; D4: also the 4 mirrors; the identity, whose error is 0 by definition, is left
    out unless ``include_identity``) of the mean over the batch of
    ``||f(g x) - g f(x)||_2 / ||f(x)||_2`` (norms over ``C, H, W``), by
    :func:`element_ratios`. On a non-square grid only the half turn (and the axis
    mirrors) are used."""
    grp = get_group(group) if isinstance(group, str) else group
    ratios = element_ratios(fn, x, layout, grp, include_identity=include_identity)
    per = {element_name(g): float(r.double().mean()) for g, r in ratios.items()}
    square = x.shape[-1] == x.shape[-2]
    note = "" if square else "non-square grid: quarter turns skipped"
    return EquivarianceError(float(np.mean(list(per.values()))) if per else 0.0, per,
                             grp.name, note)


def one_step_fn(model: nn.Module, dtype: torch.dtype | None = torch.float64,
                normalized: bool = False) -> tuple[Callable[..., torch.Tensor], nn.Module]:
    """A one-step map ``fn(x, aux=None)`` in the units the inputs come in.

    For a :class:`surrogate.Surrogate` the map is ``denormalize(net(normalize(x)))`` on
    physical units (the normalisation commutes with the group action, so it does not
    change the error), or with ``normalized`` the network itself on normalised fields;
    for a bare network it is the network. ``aux``: the static fields of a model with
    data-fed breaking inputs (``cause``), physical units for a Surrogate. With ``dtype``
    the network is copied and cast (float64 makes an exact model's error ~1e-12 instead
    of ~1e-6); if it cannot be cast the original precision is kept. Returns
    ``(fn, net)``."""
    net = getattr(model, "model", model)
    sur = model if net is not model else None
    norm = getattr(sur, "normalization", None) if not normalized else None
    net = net.eval()
    if dtype is not None:
        try:
            net = copy.deepcopy(net).to(dtype=dtype).eval()
        except Exception:  # pragma: no cover - a module that refuses the cast
            dtype = None
    p = next(net.parameters(), None)
    dev = p.device if p is not None else torch.device("cpu")
    dt = p.dtype if p is not None else torch.float32

    def fn(x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        x = x.to(dev, dt)
        if aux is not None:
            aux = torch.as_tensor(aux).to(dev, dt)
            if sur is not None and hasattr(sur, "normalize_aux"):
                aux = sur.normalize_aux(aux)
        step = net if aux is None else (lambda h: net(h, aux))
        if norm is not None:
            return norm.denormalize(step(norm.normalize(x)))
        return step(x)

    return fn, net


def model_layout(model: nn.Module, layout: FieldLayout | None = None) -> FieldLayout:
    """``layout`` if given, else the model's own (a Surrogate's), else its config's."""
    if layout is not None:
        return layout
    own = getattr(model, "layout", None)
    if isinstance(own, FieldLayout):
        return own
    return FieldLayout.of((getattr(model, "config", {}) or {}).get("layout"))


def batched(fn: Callable[..., torch.Tensor], x: torch.Tensor, aux: torch.Tensor | None,
            batch_size: int) -> Iterator[tuple[Callable[..., torch.Tensor], torch.Tensor]]:
    """``(fn with its aux slice, x slice)`` per batch of ``batch_size`` histories of ``x``
    ``(B, T, C, H, W)`` (``aux`` ``(B, C_aux, H, W)`` or None)."""
    for i in range(0, x.shape[0], batch_size):
        yield (fn if aux is None else partial(fn, aux=aux[i:i + batch_size]),
               x[i:i + batch_size])


def model_equivariance_error(model: nn.Module, x: torch.Tensor,
                             group: str | Group | None = None,
                             layout: FieldLayout | None = None,
                             dtype: torch.dtype | None = torch.float64,
                             batch_size: int = 16,
                             aux: torch.Tensor | None = None) -> EquivarianceError:
    """:func:`equivariance_error` of a model (a network from ``surrogate.build_model`` or a
    loaded :class:`surrogate.Surrogate`) on histories ``x`` ``(B, T, C, H, W)``.

    ``aux`` ``(B, C_aux, H, W)``: the static cause fields of a model with the ``cause``
    breaking input. Only the state is transformed; the breaking inputs (cause, frame,
    coords) stay as they are, so the error measures how much the model's predictions
    break the symmetry of the state (an equivariant model fed a cause is exactly
    equivariant only when the cause rotates too).

    ``group`` defaults to the model's own (``config["group"]``), else C4 (e.g. for the
    plain ``unet``; pass ``"D4"`` to include mirrors). ``x`` is in the units the model
    takes: physical for a Surrogate, normalised for a bare network."""
    layout = model_layout(model, layout)
    if group is None:  # the grid-exact group of the model's: D4 if it has mirrors, else C4
        cfg = getattr(getattr(model, "model", model), "config", {}) or {}
        group = "D4" if get_group(cfg.get("group") or "C4").flips else "C4"
    fn, _ = one_step_fn(model, dtype)
    x = torch.as_tensor(x)
    aux = None if aux is None else torch.as_tensor(aux)
    parts = [(equivariance_error(f, xb, layout, group), len(xb))
             for f, xb in batched(fn, x, aux, batch_size)]
    results, weights = [r for r, _ in parts], [n for _, n in parts]
    per = {k: float(np.average([r.per_element[k] for r in results], weights=weights))
           for k in results[0].per_element}
    return EquivarianceError(float(np.mean(list(per.values()))) if per else 0.0, per,
                             results[0].group, results[0].note)


# -- the data's own equivariance -----------------------------------------------------
def data_equivariance_error(ds) -> tuple[float | None, str]:
    """The dataset's own equivariance error (the paper's: mean absolute difference between
    a run and the rotated runs of the other walls), by
    ``simulate.data_equivariance_error``. Returns ``(value, note)``; ``value`` is None
    with the reason in ``note`` when the dataset's scenario metadata does not allow it
    (e.g. a ``translation`` dataset, or data without per-simulation wall coordinates)."""
    from simulate import data_equivariance_error as dee

    scenario = ds.attrs.get("scenario", "unknown") if hasattr(ds, "attrs") else "unknown"
    try:
        value = dee(ds)
    except (ValueError, KeyError, TypeError, NotImplementedError) as e:
        return None, f"not defined for scenario {scenario!r}: {first_line(e)}"
    try:
        value = float(np.asarray(getattr(value, "values", value), dtype=float).mean())
    except (TypeError, ValueError):
        return None, f"simulate returned an unexpected value {value!r}"
    return value, f"scenario {scenario!r}"


# -- what the relaxed layers learned ---------------------------------------------------
def _closure(group: Group, gens: Iterable[tuple[int, int]]) -> frozenset:
    els = {(0, 0)} | set(gens)
    while True:
        new = {group.compose(a, b) for a in els for b in els} | els
        if new == els:
            return frozenset(els)
        els = new


def subgroups(group: Group) -> list[frozenset]:
    """All subgroups of a (small) finite group, largest first. Every subgroup of a cyclic
    or dihedral group is generated by at most two elements."""
    els = group.elements
    subs = {_closure(group, [a, b]) for a in els for b in els}
    return sorted(subs, key=lambda s: (-len(s), sorted(s)))


def subgroup_name(group: Group, sub: frozenset) -> str:
    """``C4``, ``C2``, ``D1{e,s}``, ``trivial``... named by order, with the elements where
    the same order occurs more than once."""
    n = len(sub)
    if n == 1:
        return "trivial"
    if n == group.order:
        return group.name
    if not any(m for _, m in sub):  # a cyclic group has one rotation subgroup of each order
        return f"C{n}"
    names = ",".join(element_name(g) for g in sorted(sub, key=lambda g: (g[1], g[0])))
    return f"D{n // 2}{{{names}}}"


@dataclass
class LayerRelaxation:
    """Summary of one relaxed layer's learned weights ``w``; ``relative_deviation`` 0 =
    equivariant. By ``kind``:

    - ``"group"`` (relaxed group conv, ``w`` ``(L, |G|)``): the deviation is the mean over
      banks of ``std_g w_l(g)`` divided by ``mean |w|``; ``profile`` the weight each
      element carries, ``||w_.(g)||_2`` over the banks divided by its mean over ``g``
      (all 1 = equivariant), by element name; ``symmetry`` the largest subgroup whose
      violation (``violations``, per subgroup) is below :data:`DISCOVERY_TOLERANCE`.
    - ``"steerable"`` (``w`` ``(F_out, F_in, n_basis, k, k)``), ``"translation"`` (``w``
      ``(L, H, W)``): ``||w - mean_y w|| / ||w||`` over the positions ``y``; ``profile``
      the ``(k, k)`` / ``(H, W)`` map of the RMS deviation relative to the RMS of ``w``.
    - ``"rpp"`` (residual pathway prior): ``||W_plain|| / ||W_equivariant||``; ``profile``
      the RMS of the plain path per kernel offset relative to the equivariant one.

    ``matrix``: what the heatmaps draw (``w`` for group, else the profile)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    relative_deviation: float
    profile: Any
    matrix: np.ndarray
    symmetry: str = ""
    violations: dict[str, float] = field(default_factory=dict)
    element_names: list[str] = field(default_factory=list)


def collect_relaxation_weights(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """``{layer path: {"w": tensor, ...}}`` for every layer of ``model`` (or of a
    Surrogate's ``.model``) whose ``relaxation_weights()`` returns a ``"w"`` entry."""
    net = getattr(model, "model", model)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name, mod in net.named_modules():
        fn = getattr(mod, "relaxation_weights", None)
        if fn is None or mod is net:
            continue
        try:
            d = fn()
        except Exception:  # pragma: no cover - a container that cannot summarise
            continue
        if isinstance(d, dict) and torch.is_tensor(d.get("w")):
            out[name] = {k: v.detach().cpu() for k, v in d.items() if torch.is_tensor(v)}
    return out


def layer_group(model: nn.Module, mod_name: str) -> Group | None:
    """The group of layer ``mod_name`` of ``model`` (its own, else the model's config's)."""
    net = getattr(model, "model", model)
    try:
        grp = getattr(net.get_submodule(mod_name), "group", None)
    except AttributeError:
        grp = None
    if isinstance(grp, Group):
        return grp
    name = (getattr(net, "config", {}) or {}).get("group")
    return get_group(name) if name else None


def _ratio(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a) / (np.linalg.norm(b) or 1e-30))


def _rms(a: np.ndarray) -> float:
    return math.sqrt(float((a ** 2).mean())) or 1e-30


def _group_layer(name: str, w: np.ndarray, group: Group | None) -> LayerRelaxation:
    n = w.shape[1]
    scale = float(np.abs(w).mean()) or 1e-30
    spread = float(w.std(axis=1).mean() / scale)
    carry = np.sqrt((w ** 2).sum(axis=0))
    carry = carry / (carry.mean() or 1e-30)
    names, violations, best = [f"g{i}" for i in range(n)], {}, ""
    if group is not None and group.order == n:
        names, best = [element_name(g) for g in group.elements], "trivial"
        for sub in subgroups(group):
            # w_l(h g) == w_l(g) for all h in the subgroup <=> the layer commutes with it
            diffs = [np.abs(w[:, group.index(group.compose(h, g))] - w[:, group.index(g)])
                     for h in sub for g in group.elements]
            sname = subgroup_name(group, sub)
            violations[sname] = float(np.mean(diffs) / scale)
            if violations[sname] < DISCOVERY_TOLERANCE and best == "trivial" and len(sub) > 1:
                best = sname
    return LayerRelaxation(name, "group", w.shape, spread, dict(zip(names, carry)), w,
                           best, violations, names)


def _position_layer(name: str, kind: str, w: np.ndarray) -> LayerRelaxation:
    """``w (..., k1, k2)`` with weights per position (``steerable``: kernel offset,
    ``translation``: grid cell): the RMS deviation from each bank's mean over positions,
    relative to the RMS of ``w``, as a ``(k1, k2)`` map."""
    dev = w - w.mean(axis=(-2, -1), keepdims=True)
    prof = np.sqrt((dev.reshape(-1, *w.shape[-2:]) ** 2).mean(axis=0)) / _rms(w)
    return LayerRelaxation(name, kind, w.shape, _ratio(dev, w), prof, prof)


def _combo_entry(model: nn.Module) -> LayerRelaxation | None:
    """The learned output weights ``(w_p, w_e)`` of a combo net (``y = x_T + w_p (f_p -
    x_T) + w_e (f_e - x_T)``), as the plain net's share ``|w_p| / (|w_p| + |w_e|)``
    (0 = the model is exactly equivariant); None for any other model."""
    net = getattr(model, "model", model)
    fn = getattr(net, "relaxation_weights", None)
    d = fn() if fn is not None else None
    if not isinstance(d, dict) or not torch.is_tensor(d.get("combo_weights")):
        return None
    w = d["combo_weights"].detach().double().cpu().numpy().reshape(-1)
    share = float(abs(w[0]) / ((abs(w[0]) + abs(w[1])) or 1e-30))
    return LayerRelaxation("combo_weights", "combo", w.shape, share,
                           {"w_p": float(w[0]), "w_e": float(w[1])}, w.reshape(1, -1))


def relaxation_summary(model: nn.Module) -> list[LayerRelaxation]:
    """Per relaxed layer of ``model``: how far its learned weights are from equivariance
    and which group elements (relaxed group conv) or kernel positions (relaxed steerable
    conv) carry the symmetry breaking; for a combo net its two output weights. Empty for
    a model without relaxed layers."""
    combo = _combo_entry(model)
    out = [combo] if combo is not None else []
    for name, d in collect_relaxation_weights(model).items():
        w = d["w"].double().numpy()
        if "equivariant" in d:  # residual pathway prior: plain path against equivariant
            eq = d["equivariant"].double().numpy()
            prof = np.sqrt((w ** 2).mean(axis=(0, 1))) / _rms(eq)
            out.append(LayerRelaxation(name, "rpp", w.shape, _ratio(w, eq), prof, prof))
        elif w.ndim == 2:
            out.append(_group_layer(name, w, layer_group(model, name)))
        elif w.ndim == 5:
            out.append(_position_layer(name, "steerable", w))
        elif w.ndim == 3:
            out.append(_position_layer(name, "translation", w))
            if "coefficients" in d:  # relaxed steerable, relax="both": banks' kernels too
                c = d["coefficients"].double().numpy()
                out.append(_position_layer(f"{name}.coefficients", "steerable",
                                           c.reshape(-1, *c.shape[2:])))
        elif w.ndim == 4:  # w_l(g, x) of a roto-translation relaxed group conv
            out.append(_position_layer(name, "translation", w.reshape(-1, *w.shape[-2:])))
        else:  # unknown layout: deviation from the mean over the last axis
            out.append(LayerRelaxation(name, "other", w.shape,
                                       _ratio(w - w.mean(axis=-1, keepdims=True), w), None,
                                       np.atleast_2d(w.reshape(-1, w.shape[-1]))))
    return out
