"""The summary's symmetry sections: the data's and each model's equivariance error, and
what symmetry the relaxed layers learned (markdown lines for ``summary.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from .equivariance import LayerRelaxation
from .markdown import fmt as _fmt
from .markdown import table as _table

if TYPE_CHECKING:
    from .report import ModelEvaluation

__all__ = ["equivariance_section", "relaxation_section"]


def equivariance_section(evals: Sequence[ModelEvaluation],
                         data_eq: tuple[float | None, str]) -> list[str]:
    """Data and model equivariance errors."""
    de, note = data_eq
    L = ["## Equivariance", "",
         f"- Data equivariance error: {_fmt(de)}" + (f" ({note})" if note else ""),
         "- Model equivariance error: mean over the non-identity grid-exact group "
         "elements g of mean_windows ||f(g x) - g f(x)|| / ||f(x)|| for one step, in "
         "float64 on histories of each split."]
    broken = [f"{ev.label} ({', '.join(ev.config.get('breaking_inputs') or [])})"
              for ev in evals if ev.config.get("breaking_inputs")]
    if broken:
        L.append("- Models with breaking inputs: " + "; ".join(broken) + ". Only the state "
                 "is transformed; the breaking inputs stay fixed, so the error shows how "
                 "far the predictions break the symmetry.")
    for ev in [m for m in evals if not m.baseline]:
        for s, e in ev.equivariance.items():
            per = ", ".join(f"{k} {_fmt(v)}" for k, v in e.per_element.items())
            L.append(f"  - {ev.label}, {s}: {_fmt(e.mean)} ({e.group}: {per})"
                     + (f" [{e.note}]" if e.note else ""))
    return L + [""]


def _relaxation_cells(l: LayerRelaxation) -> tuple[str, str]:
    """The *symmetry / max position* and *weight per g / deviation map* cells of a layer."""
    def grid(p) -> str:
        return " / ".join(" ".join(f"{v:.2g}" for v in row) for row in np.asarray(p))
    if l.kind in ("group", "combo"):
        prof = ", ".join(f"{k} {v:.3g}" for k, v in l.profile.items())
        return (l.symmetry or "trivial" if l.kind == "group" else
                "plain net's share of the update, \\|w_p\\| / (\\|w_p\\| + \\|w_e\\|)"), prof
    if l.kind == "rpp":
        return "plain path / equivariant path (norms)", grid(l.profile)
    if l.profile is None:
        return "", ""
    p = np.asarray(l.profile)
    i, j = np.unravel_index(int(np.argmax(p)), p.shape)
    if l.kind == "translation":
        where, prof = (f"max at y={i}, x={j} of {p.shape[0]}x{p.shape[1]}",
                       "map in the relaxation figure")
    else:
        c = p.shape[0] // 2
        where, prof = f"dy={i - c:+d}, dx={j - c:+d}", grid(p)
    return (where if l.relative_deviation > 1e-6 else "none (equivariant)"), prof


def relaxation_section(evals: Sequence[ModelEvaluation]) -> list[str]:
    """What symmetry the relaxed layers learned (nothing without relaxed models)."""
    relaxed = [ev for ev in evals if ev.relaxation]
    if not relaxed:
        return []
    L = ["## Learned relaxation (what symmetry the model discovered)", "",
         "Relative deviation: 0 = the layer is exactly equivariant. For relaxed group "
         "convs, *symmetry* is the largest subgroup H whose elements leave the "
         "combination weights unchanged (w_l(h g) = w_l(g), violation < 5 %), "
         "*weight per g* the share each group element carries (1 = equal). For "
         "relaxed steerable convs, *max position* is the kernel offset whose "
         "coefficients deviate most from their kernel mean, and the map lists "
         "that deviation per offset, rows dy = -1 .. +1 (y up), relative to the "
         "RMS coefficient. For a combo net, the relative deviation is the plain net's "
         "share of the learned output weights (w_p, w_e).", ""]
    cols = ["layer", "kind", "relative deviation", "symmetry / max position",
            "weight per g / deviation map"]
    for ev in relaxed:
        L += [f"### {ev.label}", ""] + _table(cols, [
            [l.name, l.kind, _fmt(l.relative_deviation), *_relaxation_cells(l)]
            for l in ev.relaxation]) + [""]
    return L
