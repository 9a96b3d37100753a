"""Symmetry discovery: which elements of a square group a trained model (any model: plain,
strict, relaxed, steerable) actually keeps, measured on its predictions, and where the
learned weights of its relaxed layers put their energy among the group's irreducible
representations.

Element convention (:func:`surrogate.symmetry.transform_fields`, checked by a test on an
asymmetric array): ``g = r^k s^m`` first mirrors ``x -> -x`` (``m = 1``), then turns ``k``
counter-clockwise quarter turns. So ``(k, m)`` = ``(0, 1)`` is the mirror
``x -> -x``, ``(2, 1)`` the mirror ``y -> -y``, ``(3, 1)`` the diagonal mirror
``(x, y) -> (y, x)`` and ``(1, 1)`` the anti-diagonal mirror ``(x, y) -> (-y, -x)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from surrogate.groups import Group, get_group
from surrogate.symmetry import FieldLayout

from .equivariance import (DISCOVERY_TOLERANCE, batched, element_name, element_ratios,
                           layer_group, model_layout, one_step_fn, relaxation_summary,
                           subgroup_name, subgroups)
from .markdown import fmt, table

__all__ = ["KeepTolerance", "KEEP_TOLERANCE", "element_words", "element_errors",
           "real_irreps", "IrrepEnergy", "irrep_energy", "LayerSymmetry",
           "layer_symmetries", "SymmetryVerdict", "judge", "discover_symmetry", "describe",
           "symmetry_markdown", "step_error", "checkpoint_symmetry"]


@dataclass(frozen=True)
class KeepTolerance:
    """Element ``g`` is kept if ``e_g <= max(atol, rtol * max_h e_h, floor)`` (``floor``:
    the model's own one-step error, when the true next frames are given)."""

    atol: float
    rtol: float


#: the default keep rule (checked on trained models with known answers: docs/evaluate.md)
KEEP_TOLERANCE = KeepTolerance(atol=0.05, rtol=0.2)

#: words for the elements of C4 / D4, keyed by ``(quarter turns, mirror)``
_WORDS = {(0, 0): "identity", (1, 0): "quarter turn (+90°)", (2, 0): "half turn",
          (3, 0): "three-quarter turn (-90°)", (0, 1): "mirror x -> -x",
          (1, 1): "anti-diagonal mirror (x, y) -> (-y, -x)", (2, 1): "mirror y -> -y",
          (3, 1): "diagonal mirror (x, y) -> (y, x)"}
#: the order of a verdict line: rotations, axis mirrors, diagonal mirrors
_ORDER = [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (2, 1), (3, 1), (1, 1)]
#: pairs named together in a verdict line
_PAIRS = (((1, 0), (3, 0), "quarter turns (±90°)"), ((3, 1), (1, 1), "diagonal mirrors"))


def _square_group(group: str | Group) -> Group:
    grp = get_group(group) if isinstance(group, str) else group
    if grp.n_rotations != 4:
        raise ValueError(f"symmetry discovery needs C4 or D4 (every element exact on the "
                         f"pixel grid), got {grp.name}")
    return grp


def element_words(g: tuple[int, int]) -> str:
    """The element ``(k, m)`` of C4 / D4 in words, e.g. ``(0, 1)`` -> ``mirror x -> -x``."""
    return _WORDS[(g[0] % 4, g[1])]


def describe(elements: list[tuple[int, int]]) -> str:
    """Elements in words: rotations, then axis mirrors, then diagonal mirrors; both
    quarter turns or both diagonal mirrors are named as one pair."""
    names, done = [], set()
    for g in sorted(elements, key=lambda g: _ORDER.index((g[0] % 4, g[1]))):
        pair = next((p for p in _PAIRS if g in p[:2] and all(h in elements for h in p[:2])),
                    None)
        if pair is None:
            names.append(element_words(g))
        elif pair[2] not in done:
            names.append(pair[2])
            done.add(pair[2])
    return ", ".join(names)


# -- what the model does -------------------------------------------------------------
def _normalised(model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None):
    """``(fn, x, norm)``: the one-step map on normalised fields, the histories ``x``
    normalised (a :class:`surrogate.Surrogate`'s ``normalization``; a bare network's
    inputs already are, ``norm`` None)."""
    x = torch.as_tensor(x)
    sur = model if getattr(model, "model", model) is not model else None
    norm = getattr(sur, "normalization", None)
    if norm is not None:
        x = norm.normalize(x.to(torch.float64))
    return one_step_fn(model, dtype, normalized=True)[0], x, norm


@torch.no_grad()
def element_errors(model: nn.Module, x: torch.Tensor, group: str | Group = "D4",
                   aux: torch.Tensor | None = None, layout: FieldLayout | None = None,
                   dtype: torch.dtype | None = torch.float64,
                   batch_size: int = 16) -> dict[str, float]:
    """Step error per element: ``e_g = mean_b ||f(g x) - g f(x)|| / ||f(x) - x_T||``.

    ``x`` ``(B, T, C, H, W)``: histories in the units the model takes (physical for a
    loaded :class:`surrogate.Surrogate`, normalised for a bare network); ``x_T`` is the
    last given frame; norms over ``C, H, W``. Measured on normalised fields (a
    Surrogate's ``normalization``, which commutes with the group), so every channel
    weighs alike. The numerator is also the error of the predicted step, since
    ``(g x)_T = g x_T``: ``f(g x) - g f(x) = [f(g x) - (g x)_T] - g [f(x) - x_T]``.

    Why the step: one step changes the state little, so ``f(x)`` is mostly the last
    frame and ``||f(g x) - g f(x)|| / ||f(x)||``
    (:func:`~evaluate.equivariance.equivariance_error`) is small for any model that
    changes little, whatever it does with the symmetry (persistence would score 0);
    relative to the step it says how much of what the model *predicts* breaks ``g``. ``aux`` ``(B, C_aux, H, W)``: a ``cause`` model's static fields (kept
    fixed, as in :func:`~evaluate.equivariance.model_equivariance_error`). Returns
    ``{symbol: e_g}`` for every element in group order, the identity 0; NaN for an
    element that does not act on a non-square grid."""
    grp = _square_group(group)
    layout = model_layout(model, layout)
    fn, x, _ = _normalised(model, x, dtype)

    def step(h: torch.Tensor, fh: torch.Tensor) -> torch.Tensor:
        return (fh - h[:, -1].to(fh)).flatten(1).norm(dim=1)

    ratios: dict[tuple[int, int], list[torch.Tensor]] = {}
    for f, xb in batched(fn, x, None if aux is None else torch.as_tensor(aux), batch_size):
        for g, r in element_ratios(f, xb, layout, grp, scale=step).items():
            ratios.setdefault(g, []).append(r.double().cpu())
    return {element_name(g): 0.0 if g == (0, 0) else
            float(torch.cat(ratios[g]).mean()) if g in ratios else math.nan
            for g in grp.elements}


@torch.no_grad()
def step_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               aux: torch.Tensor | None = None, batch_size: int = 16) -> float:
    """The model's own one-step error relative to its step,
    ``mean_b ||f(x) - y|| / ||f(x) - x_T||``, on normalised fields as
    :func:`element_errors` (``x`` ``(B, T, C, H, W)``, the true next frames ``y``
    ``(B, C, H, W)``, both in the units the model takes): how well the model knows the
    step at all, the floor below which breaking an element cannot be told from error."""
    fn, x, norm = _normalised(model, x, torch.float64)
    y = torch.as_tensor(y)
    if norm is not None:
        y = norm.normalize(y.to(torch.float64)[:, None])[:, 0]
    out = []
    for i, (f, xb) in enumerate(batched(fn, x, None if aux is None else torch.as_tensor(aux),
                                        batch_size)):
        xb = xb.double()
        fx = f(xb).double()
        err = (fx - y[i * batch_size:(i + 1) * batch_size].to(fx)).flatten(1).norm(dim=1)
        out.append(err / (fx - xb[:, -1]).flatten(1).norm(dim=1).clamp_min(1e-30))
    return float(torch.cat(out).mean())


# -- what the relaxed weights hold ---------------------------------------------------
def real_irreps(group: Group) -> list[tuple[str, np.ndarray, float]]:
    """``(name, character over group.elements, c)`` per real irrep of C_N / D_N; the
    isotypic projector of the regular representation is ``c sum_h chi(h) lambda(h)``.

    1-dim irreps are named by their sign on ``r`` and on the mirror ``s`` (``x -> -x``):
    ``A1 (r:+1, s:+1)`` is the trivial one. ``E`` is 2-dim: ``chi(r^k) = 2 cos(2 pi j k /
    N)``, 0 on mirrors; in C_N it is the real form of the complex pair ``j, -j`` (``c =
    1/|G|``), in D_N absolutely irreducible (``c = 2/|G|``)."""
    n = group.n_rotations
    k = np.array([g[0] for g in group.elements], float)
    m = np.array([g[1] for g in group.elements], float)
    one, inv = np.ones_like(k), 1.0 / group.order
    if group.flips:
        out = [("A1 (r:+1, s:+1)", one, inv), ("A2 (r:+1, s:-1)", (-1) ** m, inv)]
        if n % 2 == 0:
            out += [("B1 (r:-1, s:+1)", (-1) ** k, inv),
                    ("B2 (r:-1, s:-1)", (-1) ** (k + m), inv)]
    else:
        out = [("A (r:+1)", one, inv)]
        out += [("B (r:-1)", (-1) ** k, inv)] if n % 2 == 0 else []
    for j in range(1, (n + 1) // 2):
        chi = np.where(m == 1, 0.0, 2 * np.cos(2 * np.pi * j * k / n))
        out.append(("E" if n < 5 else f"E{j}", chi, (2 if group.flips else 1) * inv))
    return out


@dataclass
class IrrepEnergy:
    """``energy[rho] = sum_l ||P_rho w_l||^2`` (sums to ``||w||^2``), ``fractions`` the
    same over ``||w||^2``; ``violations[H] = ||(1 - P_H) w|| / ||w||`` per subgroup;
    ``symmetry``: the largest subgroup with violation <= the tolerance."""

    group: str
    energy: dict[str, float]
    fractions: dict[str, float]
    symmetry: str
    violations: dict[str, float]


def irrep_energy(w: Any, group: str | Group, tol: float = DISCOVERY_TOLERANCE
                 ) -> IrrepEnergy:
    """Fourier energy of a relaxed group conv's weights ``w`` ``(L, |G|)`` per real irrep.

    Each bank's function ``g -> w_l(g)`` is projected onto the isotypic components of
    the regular representation, ``P_rho = c sum_h chi_rho(h) lambda(h)``
    (:func:`real_irreps`; ``(lambda(h) f)(g) = f(h^-1 g)``). All energy in the trivial
    irrep = ``w`` constant over ``g`` = the layer is equivariant. The layer commutes with a
    subgroup ``H`` iff ``w_l(h g) = w_l(g)``, i.e. ``P_H w = w`` with ``P_H`` the mean of
    ``lambda(h)`` over ``H``; ``P_H`` commutes with every ``P_rho``, so ``H`` is kept iff
    each irrep with energy has its component fixed by ``H``: a 1-dim irrep iff its
    character is 1 on ``H`` (``A2``, with ``s:-1``, rules out every subgroup holding
    ``s``); in C4 / D4, ``E`` (no trivial part on any rotation) allows at most one
    mirror.
    ``symmetry``: the largest ``H`` with ``||(1 - P_H) w|| / ||w|| <= tol`` (ties: the
    smaller violation), named as by :func:`~evaluate.equivariance.subgroup_name`."""
    grp = get_group(group) if isinstance(group, str) else group
    w = np.atleast_2d(np.asarray(w, np.float64))
    if w.ndim != 2 or w.shape[1] != grp.order:
        raise ValueError(f"w must be (L, |{grp.name}| = {grp.order}), got {w.shape}")
    lam = grp.left_regular_permutation.numpy()
    energy = {name: float(((c * sum(chi[a] * w[:, lam[a]] for a in range(grp.order))) ** 2
                           ).sum()) for name, chi, c in real_irreps(grp)}
    total = float((w ** 2).sum())
    fractions = {k: v / total if total else 0.0 for k, v in energy.items()}
    violations, best = {}, (1, 0.0, "trivial")
    for sub in subgroups(grp):
        fixed = np.mean([w[:, lam[grp.index(h)]] for h in sub], axis=0)
        v = float(np.linalg.norm(w - fixed) / (math.sqrt(total) or 1e-30))
        violations[subgroup_name(grp, sub)] = v
        if v <= tol and (len(sub), -v) > best[:2]:
            best = (len(sub), -v, subgroup_name(grp, sub))
    return IrrepEnergy(grp.name, energy, fractions, best[2], violations)


@dataclass
class LayerSymmetry:
    """One relaxed layer: ``relative_deviation`` as in
    :class:`~evaluate.equivariance.LayerRelaxation`. Relaxed group convs: ``irreps``
    (energy fraction per irrep), ``symmetry`` (largest subgroup, :func:`irrep_energy`)
    and ``violation_symmetry`` (the same from the mean-absolute violations, a cross
    check). Position-dependent layers: ``peak`` / ``mean`` of the deviation profile."""

    name: str
    kind: str
    relative_deviation: float
    symmetry: str = ""
    violation_symmetry: str = ""
    irreps: dict[str, float] = field(default_factory=dict)
    peak: float | None = None
    mean: float | None = None


def layer_symmetries(model: nn.Module) -> list[LayerSymmetry]:
    """Per relaxed layer of ``model`` (by
    :func:`~evaluate.equivariance.relaxation_summary`): irrep energies of relaxed group
    convs, profile peak and mean of the position-dependent ones; combo weights left out."""
    out = []
    for l in relaxation_summary(model):
        if l.kind == "group":
            grp = layer_group(model, l.name)
            if grp is None or grp.order != l.matrix.shape[1]:
                continue
            ie = irrep_energy(l.matrix, grp)
            out.append(LayerSymmetry(l.name, l.kind, l.relative_deviation, ie.symmetry,
                                     l.symmetry, ie.fractions))
        elif isinstance(l.profile, np.ndarray):
            out.append(LayerSymmetry(l.name, l.kind, l.relative_deviation,
                                     peak=float(l.profile.max()),
                                     mean=float(l.profile.mean())))
    return out


# -- the verdict ---------------------------------------------------------------------
@dataclass
class SymmetryVerdict:
    """What :func:`discover_symmetry` found. ``errors``: ``e_g`` by element symbol
    (``e``, ``r``, ..., ``r3s``; NaN: not measurable), ``words`` the same symbols in
    words; ``kept``: the symbols with ``e_g <= threshold``; ``subgroup``: the symbols of
    the largest subgroup inside ``kept`` (``subgroup_name``); ``verdict``: one line."""

    group: str
    errors: dict[str, float]
    words: dict[str, str]
    threshold: float
    atol: float
    rtol: float
    kept: list[str]
    subgroup: list[str]
    subgroup_name: str
    verdict: str
    layers: list[LayerSymmetry] = field(default_factory=list)
    note: str = ""
    floor: float | None = None      # the model's own one-step error (None: not measured)

    def to_dict(self) -> dict:
        """As JSON-ready dict (NaN as None)."""
        d = asdict(self)
        d["errors"] = {k: None if math.isnan(v) else v for k, v in self.errors.items()}
        return d


def _largest_kept(grp: Group, errors: dict[str, float], kept: set[str]) -> frozenset:
    """The largest subgroup whose elements are all kept (ties: the smaller worst error)."""
    subs = [s for s in subgroups(grp) if all(element_name(g) in kept for g in s)]
    top = max(len(s) for s in subs)
    return min((s for s in subs if len(s) == top),
               key=lambda s: max(errors[element_name(g)] for g in s))


def _verdict_line(grp: Group, sub: frozenset, kept: set[str], errors: dict[str, float]
                  ) -> str:
    """``keeps <H>: ...; breaks: ...`` (plus stray kept and unmeasured elements)."""
    inside = [g for g in grp.elements if g in sub]
    broken = [g for g in grp.elements
              if g not in sub and not math.isnan(errors[element_name(g)])]
    if len(sub) in (1, grp.order):
        line = "keeps only the identity" if len(sub) == 1 else f"keeps all of {grp.name}"
    else:
        line = f"keeps {subgroup_name(grp, sub)}: {describe(inside)}"
    line += f"; breaks: {describe(broken) or 'nothing'}"
    stray = [g for g in broken if element_name(g) in kept]
    if stray:
        line += f" ({describe(stray)} within tolerance, but not a group with the rest)"
    unmeasured = [g for g in grp.elements if math.isnan(errors[element_name(g)])]
    if unmeasured:
        line += f"; not measured (non-square grid): {describe(unmeasured)}"
    return line


def judge(errors: dict[str, float], group: str | Group = "D4",
          atol: float = KEEP_TOLERANCE.atol, rtol: float = KEEP_TOLERANCE.rtol,
          layers: list[LayerSymmetry] | None = None,
          floor: float | None = None) -> SymmetryVerdict:
    """The verdict on per-element errors ``{symbol: e_g}`` (:func:`element_errors`).

    Element ``g`` is kept if ``e_g <= max(atol, rtol * max_h e_h, floor)``, ``floor``
    the model's own one-step error (:func:`step_error`; a trained model cannot be said
    to break ``g`` by less than it errs); the model keeps the largest subgroup all of
    whose elements are kept (a set of kept elements need not be a group; ties: the
    smaller worst error). NaN errors (not measurable) are never kept."""
    grp = _square_group(group)
    finite = [v for v in errors.values() if not math.isnan(v)]
    threshold = max(atol, rtol * max(finite), floor or 0.0)
    kept = [k for k, v in errors.items() if v <= threshold]
    sub = _largest_kept(grp, errors, set(kept))
    note = "" if len(finite) == grp.order else "non-square grid: odd quarter turns skipped"
    return SymmetryVerdict(
        grp.name, dict(errors), {element_name(g): element_words(g) for g in grp.elements},
        threshold, atol, rtol, kept, [element_name(g) for g in grp.elements if g in sub],
        subgroup_name(grp, sub), _verdict_line(grp, sub, set(kept), errors),
        list(layers or []), note, floor)


def discover_symmetry(model: nn.Module, x: torch.Tensor, group: str | Group = "D4",
                      atol: float = KEEP_TOLERANCE.atol, rtol: float = KEEP_TOLERANCE.rtol,
                      aux: torch.Tensor | None = None, layout: FieldLayout | None = None,
                      batch_size: int = 16, targets: torch.Tensor | None = None
                      ) -> SymmetryVerdict:
    """Which symmetry ``model`` keeps on histories ``x`` ``(B, T, C, H, W)``: the
    :func:`judge` of its :func:`element_errors` (``e_g <= max(atol, rtol * max e_h,
    floor)``, defaults :data:`KEEP_TOLERANCE`), with the :func:`layer_symmetries` of its
    relaxed layers. ``targets`` ``(B, C, H, W)``: the true next frames, which make the
    model's own one-step error (:func:`step_error`) the floor. Any model is judged on
    ``group`` (D4 by default): a C4 model should keep the rotations and break the
    mirrors."""
    errors = element_errors(model, x, group, aux=aux, layout=layout, batch_size=batch_size)
    floor = None if targets is None else step_error(model, x, targets, aux, batch_size)
    return judge(errors, group, atol, rtol, layer_symmetries(model), floor)


def checkpoint_symmetry(checkpoint: str, data: str, split: str = "test-domain",
                        windows: int = 16, group: str | Group = "D4",
                        device: str = "cpu", with_floor: bool = True) -> SymmetryVerdict:
    """:func:`discover_symmetry` of a trained checkpoint on up to ``windows`` histories
    of ``split`` of the data file ``data`` (the split as the checkpoint records it);
    ``with_floor``: judge with the model's own one-step error on those windows as the
    floor (:func:`judge`)."""
    import surrogate
    from .rollout import build_windows, iter_batches, open_data

    sur = surrogate.load(checkpoint, device=device)
    ds = open_data([data])
    try:
        w = build_windows(sur.record, split, ds, sur.T_in, 1).subset(windows)
        pairs = list(iter_batches(ds, w, list(sur.layout.channels), 64))
        x = np.concatenate([h for _, h, _ in pairs])
        y = np.concatenate([t[:, 0] for _, _, t in pairs])      # the true next frames
        aux = None
        if sur.aux_channels:
            from .rollout import load_aux
            aux = torch.from_numpy(load_aux(ds, sur.aux_channels, w.sims))
    finally:
        ds.close()
    return discover_symmetry(sur, torch.from_numpy(x), group, aux=aux,
                             targets=torch.from_numpy(y) if with_floor else None)


# -- the report's section ------------------------------------------------------------
def symmetry_markdown(verdicts: dict[str, SymmetryVerdict]) -> list[str]:
    """The report's section *Symmetry the model keeps*: per model (label -> verdict)
    the verdict line, ``e_g`` per element, and its relaxed layers (nothing without)."""
    if not verdicts:
        return []
    v0 = next(iter(verdicts.values()))
    L = ["## Symmetry the model keeps", "",
         "e_g = mean over histories of ||f(g x) - g f(x)|| / ||f(x) - x_T|| (x_T: the "
         "last given frame): the share of the predicted step that breaks g; one step, "
         "normalised fields, float64, the equivariance histories of every split.",
         f"g is kept if e_g <= max(atol, rtol * max e_g, floor) (atol {fmt(v0.atol)}, "
         f"rtol {fmt(v0.rtol)}; floor: the model's own one-step error relative to its "
         "step on the same histories, below which breaking g cannot be told from "
         "error); the model keeps the largest subgroup of kept elements.", ""]
    for label, v in verdicts.items():
        floor = "" if v.floor is None else f" (floor {fmt(v.floor)})"
        L += [f"### {label}", "", f"**{v.verdict}**{floor}", ""] + table(
            ["element", "in words", "e_g", "kept"],
            [[k, v.words[k], fmt(e), "yes" if k in v.subgroup else
              "within tolerance (no subgroup)" if k in v.kept else "no"]
             for k, e in v.errors.items()]) + [""]
        L += ([f"> {v.note}", ""] if v.note else []) + _layers_markdown(v.layers)
    return L


def _layers_markdown(layers: list[LayerSymmetry]) -> list[str]:
    """Irrep fractions of relaxed group convs, then position-dependent profiles."""
    group = [l for l in layers if l.irreps]
    other = [l for l in layers if l.peak is not None]
    L: list[str] = []
    if group:
        irreps = list(dict.fromkeys(k for l in group for k in l.irreps))
        L += ["Relaxed group convs, energy of w_l(g) per real irrep (all in the first = "
              "equivariant; symmetry: the largest subgroup fixing w):", ""] + table(
            ["layer", "symmetry"] + irreps,
            [[l.name, l.symmetry] + [fmt(l.irreps.get(k), 3) for k in irreps]
             for l in group]) + [""]
    if other:
        L += ["Position-dependent layers, deviation profile relative to the RMS weight:",
              ""] + table(["layer", "kind", "relative deviation", "peak", "mean"],
                          [[l.name, l.kind, fmt(l.relative_deviation), fmt(l.peak),
                            fmt(l.mean)] for l in other]) + [""]
    return L
