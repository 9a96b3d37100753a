"""Aggregation over seeds, and the report's markdown sections: tables and verdicts."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING

from .plan import (ABLATION_SCENARIOS, ABLATION_VARIANTS, INPUT_SCENARIOS, INPUT_VARIANTS,
                   SPLITS, STRICT_OF, SWEEP_MODELS, TABLE1_ROWS, RunTask, table1_key)

if TYPE_CHECKING:
    from .report import Report

#: (data_key, label) -> split -> per-seed RMSE
Agg = dict[tuple, dict[str, list[float]]]
#: data_key -> split -> persistence RMSE
Base = dict[str, dict[str, float]]


def mean_std(vals: list[float]) -> tuple[float, float, int]:
    """(mean, sample std, count) of ``vals``; (nan, nan, 0) when empty."""
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, 0
    m = sum(vals) / n
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return m, s, n


def fmt_cell(m: float, s: float, n: int, nseeds: int, bold: bool = False) -> str:
    """A table cell "mean ± std" (bold, and "(n/N seeds)" when seeds are missing)."""
    if n == 0:
        return "–"
    txt = f"**{m:.4f} ± {s:.4f}**" if bold else f"{m:.4f} ± {s:.4f}"
    return txt + (f" ({n}/{nseeds} seeds)" if n < nseeds else "")


def _cell_stats(agg: Agg, data_key: str, label: str, split: str) -> tuple[float, float, int]:
    """``mean_std`` of the per-seed RMSE of one table cell."""
    return mean_std(agg.get((data_key, label), {}).get(split, []))


def _best(pairs: list[tuple]) -> object:
    """The key of the lowest finite mean among ``(mean, key)`` pairs (None if none)."""
    finite = [p for p in pairs if not math.isnan(p[0])]
    return min(finite)[1] if finite else None


def _grid(agg: Agg, labels: list[str], cols: list[tuple[str, str]], nseeds: int
          ) -> dict[str, list[str]]:
    """Each label's cells in the columns ``(data_key, split)``, the lowest mean bold."""
    best = {(k, s): _best([(_cell_stats(agg, k, lab, s)[0], lab) for lab in labels])
            for k, s in cols}
    return {lab: [fmt_cell(*_cell_stats(agg, k, lab, s), nseeds, bold=best[(k, s)] == lab)
                  for k, s in cols] for lab in labels}


def _count(p: int | None) -> str:
    """A parameter count with thousands separators, "–" when unknown."""
    return f"{p:,}" if isinstance(p, int) else "–"


def _num(x: float | None) -> str:
    """``x`` to 4 decimals, "–" when unknown."""
    return "–" if x is None else f"{x:.4f}"


def collect(results: list[dict], metric: str = "rmse") -> Agg:
    """(data_key, label) -> split -> per-seed score ``metric`` ("rmse": all fields,
    "rmse_velocity": u and v; runs without the score are left out)."""
    agg: Agg = {}
    for r in results:
        if "error" in r:
            continue
        # a run shared by studies is stored under its model label and its variant label
        # (in a fixed order: the JSON's aggregate keeps the same order from run to run)
        labels = [r["label"]]
        if not r["breaking_inputs"] and not r.get("variant"):
            labels += [r["model"]] + [lab for lab, m, br in INPUT_VARIANTS
                                      if m == r["model"] and not br]
        for lab in dict.fromkeys(labels):
            d = agg.setdefault((r["data_key"], lab), {s: [] for s in SPLITS})
            for s in SPLITS:
                v = r["scores"][s].get(metric)
                if v is not None:
                    d[s].append(v)
    return agg


def _verdict(agg: Agg, sc: str, split: str, models: list[str]) -> str | None:
    """One scenario and split: the best model, each relaxed model vs plain and strict."""
    def mean(m: str) -> float:
        """Mean RMSE of model ``m`` over seeds (nan without results)."""
        return _cell_stats(agg, sc, m, split)[0]
    parts = []
    for rel, strict in STRICT_OF.items():
        r = mean(rel)
        if rel in models and not math.isnan(r):
            cmp = [f"{(r / b - 1) * 100:+.0f}% vs {other}"
                   for other, b in (("unet", mean("unet")), (strict, mean(strict)))
                   if not math.isnan(b)]
            parts.append(f"{rel} {', '.join(cmp)}")
    best = _best([(mean(m), m) for m in models])
    if best is None:
        return None
    return f"- {sc} {split}: best {best} ({mean(best):.4f}); " + "; ".join(parts)


def verdicts(agg: Agg, scenarios: list[str], models: list[str]) -> list[str]:
    """Plain statements: does each relaxed model beat plain and its strict counterpart?"""
    lines = [_verdict(agg, sc, split, models) for sc in scenarios for split in SPLITS]
    return [v for v in lines if v is not None]


def ratio_tables(agg: Agg, agg_vel: Agg, base: Base, base_vel: Base, scenarios: list[str],
                 models: list[str], nseeds: int) -> list[str]:
    """Mean RMSE over persistence RMSE per model, scenario and split, for the velocity
    (u, v) and all fields, with the cells where a model does not beat persistence."""
    cols = [(sc, split) for sc in scenarios for split in SPLITS]
    lines = ["### Ratio to persistence (velocity / all fields; < 1 beats it)", "",
             "| model | " + " | ".join(f"{sc} {split}" for sc, split in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    losses = []

    def ratio(a: Agg, b: Base, sc: str, m: str, split: str) -> float:
        """Mean over seeds of one model's score over persistence (nan if missing)."""
        mean, _, n = _cell_stats(a, sc, m, split)
        den = b.get(sc, {}).get(split, math.nan)
        return mean / den if n and den and not math.isnan(den) else math.nan

    for m in models:
        cells = []
        for sc, split in cols:
            rv, ra = ratio(agg_vel, base_vel, sc, m, split), ratio(agg, base, sc, m, split)
            if math.isnan(rv) and math.isnan(ra):
                cells.append("–")
                continue
            n = _cell_stats(agg, sc, m, split)[2]
            txt = " / ".join("–" if math.isnan(r) else f"{r:.2f}" for r in (rv, ra))
            cells.append(txt + (f" ({n}/{nseeds} seeds)" if n < nseeds else ""))
            if rv >= 1 or ra >= 1:  # nan compares False
                losses.append(f"{m} on {sc} {split} ({txt})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Does not beat persistence on both metrics: "
              + ("; ".join(losses) if losses else "none") + ".", ""]
    return lines


def _model_tables(rep: Report, scenarios: list[str], keys: list[str],
                  params: dict[str, int]) -> list[str]:
    """The runs ``keys`` x scenarios: one RMSE table per split, with persistence, then the
    ratio tables."""
    lines, nseeds = [], len(rep.st.seeds)
    for split in SPLITS:
        cells = _grid(rep.agg, keys, [(sc, split) for sc in scenarios], nseeds)
        lines += [f"### {split} RMSE", "",
                  "| model | params | " + " | ".join(scenarios) + " |",
                  "|---|---:|" + "---:|" * len(scenarios)]
        lines += [f"| {m} | {_count(params.get(m))} | " + " | ".join(cells[m]) + " |"
                  for m in keys]
        lines += ["| *persistence* | 0 | " + " | ".join(
            f"{rep.base[sc][split]:.4f}" if sc in rep.base else "–" for sc in scenarios)
            + " |", ""]
    return lines + ratio_tables(rep.agg, rep.agg_velocity, rep.base, rep.base_velocity,
                                scenarios, keys, nseeds)


def main_section(rep: Report) -> list[str]:
    """The five models at equal parameter count, with the relaxed-vs-others verdicts."""
    params = {t.model: t.params for t in rep.plan.tasks
              if not t.breaking_inputs and not t.variant}
    return (["", "## Five models at equal parameter count", ""]
            + _model_tables(rep, rep.main_scenarios, rep.st.models, params)
            + ["Relaxed vs plain and vs its strict counterpart (relative change of the "
               "mean RMSE; negative = relaxed better):", ""]
            + verdicts(rep.agg, rep.main_scenarios, rep.st.models))


def sweep_section(rep: Report) -> list[str]:
    """The sweep: one row per breaking level and split, with the data equivariance error."""
    ms = [m for m in SWEEP_MODELS if m in rep.st.models]
    lines = ["", "## Symmetry-breaking sweep (`breaking_sweep`)", "",
             f"One dataset per level; plot: `accuracy_sweep_{rep.st.scale_name}.png`.", "",
             "| level | data eq. error | split | " + " | ".join(ms) + " | persistence |",
             "|---:|---:|---|" + "---:|" * (len(ms) + 1)]
    for d in [d for d in rep.plan.djobs if d.level is not None]:
        err = rep.out.dinfo.get(d.key, {}).get("data_equivariance_error")
        for split in SPLITS:
            vals = [_cell_stats(rep.agg, d.key, m, split) for m in ms]
            bi = _best([(v[0], i) for i, v in enumerate(vals)])
            cells = [fmt_cell(*v, len(rep.st.seeds), bold=i == bi) for i, v in enumerate(vals)]
            lines.append(f"| {d.level:g} | {_num(err)} | {split} | " + " | ".join(cells)
                         + f" | {rep.base.get(d.key, {}).get(split, math.nan):.4f} |")
    return lines


def inputs_section(rep: Report) -> list[str]:
    """The breaking-input variants (breaking symmetry by inputs): one row each, scenario x split
    columns, with persistence."""
    cols = [(sc, s) for sc in INPUT_SCENARIOS for s in SPLITS]
    lines = ["", "## Breaking symmetry by inputs", "",
             "Group-conv family: strict = `gconv_unet`, relaxed = `relaxed_gconv_unet`; "
             "`cause` = buoyancy vector + inflow/obstacle/open-wall masks from the "
             "dataset, `frame` = the global axes as vector fields, `coords` = x, y "
             "channels. Test-future / test-domain RMSE.", "",
             "| variant | model | params | " + " | ".join(
                 f"{sc} {s.split('-')[1]}" for sc, s in cols) + " |",
             "|---|---|---:|" + "---:|" * len(cols)]
    cells = _grid(rep.agg, [lab for lab, _, _ in INPUT_VARIANTS], cols, len(rep.st.seeds))
    skip = not rep.plan.inputs_ok
    for lab, m, br in INPUT_VARIANTS:
        t = next((t for t in rep.plan.tasks
                  if t.model == m and tuple(t.breaking_inputs) == br), None)
        p = t.params if t else None
        row = ["skipped" if c == "–" and br and skip else c for c in cells[lab]]
        name = f"{m} + {'+'.join(br)}" if br and isinstance(p, int) else m
        lines.append(f"| {lab} | {name} | {_count(p)} | " + " | ".join(row) + " |")
    lines.append("| *persistence* | – | 0 | " + " | ".join(
        f"{rep.base.get(sc, {}).get(s, math.nan):.4f}" for sc, s in cols) + " |")
    if skip:
        lines += ["", f"Variants with breaking inputs were skipped: {rep.plan.why}"]
    return lines


@functools.lru_cache(maxsize=None)
def relaxation_deviation(checkpoint: str) -> float | None:
    """Mean relative deviation from equivariance over relaxed layers; None if strict."""
    import surrogate
    from evaluate import relaxation_summary
    layers = relaxation_summary(surrogate.load(checkpoint).model)
    return sum(l.relative_deviation for l in layers) / len(layers) if layers else None


def _deviations(tasks: list[RunTask]) -> list[float]:
    """Relaxation deviations of the runs that have a best checkpoint (strict runs: none)."""
    d = [relaxation_deviation(str(Path(t.out) / "best.pt")) for t in tasks
         if (Path(t.out) / "best.pt").is_file()]
    return [x for x in d if x is not None]


_ABLATION_INTRO = (
    "`relaxed L=2` is the default relaxed group conv (2 filter banks) at the "
    "common parameter target, so it is narrower than `strict`; `relaxed L=1` "
    "(one bank, one weight per group element and layer) is nearly as wide as "
    "`strict`; `relaxed L=2 @ strict width` has the strict model's hidden "
    "width and so more parameters. The relaxed steerable coefficients are "
    "w(y) = w_bar + relax_scale * delta(y) (default relax_scale 1, alpha "
    "1e-5); the variants change one of the two; `@ strict width` rows have "
    "the strict steerable model's width (per-position coefficients: about "
    "9x its parameters). Relaxation dev. (0 = exactly equivariant; "
    "`evaluate.relaxation_summary`, averaged over relaxed layers and seeds): "
    "for a relaxed group conv the spread over g (std) of the learned weights "
    "w_l(g) relative to their mean magnitude; for a relaxed steerable conv the "
    "spread of the kernel coefficients over kernel positions relative to their "
    "size. Test-future / test-domain RMSE.")
_RELAXATION_INTRO = (
    "Learned relaxation per dataset (the relaxed models of the other "
    "studies, at equal parameters): relaxation dev. as above for "
    "`relaxed_gconv_unet`; for `relaxed_steer_unet` the spread of the kernel "
    "coefficients over kernel positions relative to their size (0 = "
    "equivariant). Mean ± std over seeds. Data eq. error as in the settings "
    "(none for data without rotated partner runs).")


def ablation_section(rep: Report) -> list[str]:
    """The ablation (one row per variant with width, parameters, RMSE and relaxation) and
    the learned relaxation per dataset."""
    nseeds = len(rep.st.seeds)
    cols = [(sc, s) for sc in ABLATION_SCENARIOS for s in SPLITS]
    lines = ["", "## Ablation: what the relaxation buys", "", _ABLATION_INTRO, "",
             "| variant | model | hidden | params | " + " | ".join(
                 f"{sc} {s.split('-')[1]}" for sc, s in cols) + " | relaxation dev. "
             + " / ".join(ABLATION_SCENARIOS) + " |",
             "|---|---|---:|---:|" + "---:|" * (len(cols) + 1)]
    keys = [label if (extra or width_of) else m
            for label, m, extra, width_of in ABLATION_VARIANTS]
    cells = _grid(rep.agg, keys, cols, nseeds)
    for (label, m, _, _), key in zip(ABLATION_VARIANTS, keys):
        ts = [t for t in rep.plan.tasks if t.model == m and not t.breaking_inputs
              and t.variant == (key if key == label else "")]
        per_sc = [_deviations([t for t in ts if t.data_key == sc]) for sc in ABLATION_SCENARIOS]
        devs = [f"{sum(d) / len(d):.3f}" if d else "–" for d in per_sc]
        lines.append(f"| {label} | {m} | {ts[0].hidden if ts else '–'} | "
                     f"{_count(ts[0].params if ts else None)} | " + " | ".join(cells[key])
                     + f" | {' / '.join(devs)} |")
    return (lines + ["", _RELAXATION_INTRO, ""]
            + relaxation_table(rep.plan.tasks, rep.out.dinfo, nseeds))


def relaxation_table(tasks: list[RunTask], dinfo: dict[str, dict], nseeds: int
                     ) -> list[str]:
    """How far the learned relaxation moved from equivariance, per dataset and model (does
    the relaxation find the breaking the data carry?)."""
    rel = [m for m in STRICT_OF if any(t.model == m for t in tasks)]
    lines = ["| dataset | data eq. error | " + " | ".join(rel) + " |",
             "|---|---:|" + "---:|" * len(rel)]
    for k in dict.fromkeys(t.data_key for t in tasks):
        devs = [_deviations([t for t in tasks if t.data_key == k and t.model == m
                             and not t.breaking_inputs and not t.variant]) for m in rel]
        cells = [fmt_cell(*mean_std(d), nseeds) if d else "–" for d in devs]
        if any(c != "–" for c in cells):
            err = dinfo.get(k, {}).get("data_equivariance_error")
            lines.append(f"| `{k}` | {_num(err)} | " + " | ".join(cells) + " |")
    return lines


def table1_section(rep: Report) -> list[str]:
    """The paper's Table 1 shape: every baseline and relaxed model per
    scenario and split, persistence as the floor."""
    keys = [table1_key(label, m, extra) for label, m, extra, _ in TABLE1_ROWS]
    params = {t.variant or t.model: t.params for t in rep.plan.tasks
              if "table1" in t.study.split(",")}
    rows = "; ".join(f"{label} = `{m}`" + (f" ({', '.join(extra)})" if extra else "")
                     for label, m, extra, _ in TABLE1_ROWS)
    return (["", "## The paper's Table 1 on one U-Net skeleton", "",
             f"Rows: {rows}. `clc_unet` runs on `translation` only and cannot be sized to "
             "the common parameter target (its smallest width has more: see params). RMSE "
             "over all fields.", ""]
            + _model_tables(rep, rep.st.scenarios, keys, params))


#: the markdown section of each study, in the report's order
SECTIONS = {"main": main_section, "sweep": sweep_section, "inputs": inputs_section,
            "ablation": ablation_section, "table1": table1_section}
