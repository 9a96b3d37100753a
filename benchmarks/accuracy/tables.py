"""Aggregation over seeds and the markdown tables and verdicts of the report."""

from __future__ import annotations

import functools
import math
from pathlib import Path

from .plan import (ABLATION_SCENARIOS, ABLATION_VARIANTS, INPUT_SCENARIOS, INPUT_VARIANTS,
                   SPLITS, STRICT_OF, SWEEP_MODELS, DataJob, RunTask)

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
    txt = f"{m:.4f} ± {s:.4f}"
    if bold:
        txt = f"**{txt}**"
    if n < nseeds:
        txt += f" ({n}/{nseeds} seeds)"
    return txt


def _cell_stats(agg: Agg, data_key: str, label: str, split: str) -> tuple[float, float, int]:
    """``mean_std`` of the per-seed RMSE of one table cell."""
    return mean_std(agg.get((data_key, label), {}).get(split, []))


def collect(results: list[dict], metric: str = "rmse") -> Agg:
    """(data_key, label) -> split -> per-seed score ``metric`` ("rmse": all fields,
    "rmse_velocity": u and v; runs without the score are left out)."""
    agg: Agg = {}
    for r in results:
        if "error" in r:
            continue
        # a run shared by studies is stored under its model label and its variant label
        labels = {r["label"]}
        if not r["breaking_inputs"] and not r.get("variant"):
            labels.add(r["model"])
            for lab, m, br in INPUT_VARIANTS:
                if m == r["model"] and not br:
                    labels.add(lab)
        for lab in labels:
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
        v = agg.get((sc, m), {}).get(split, [])
        return mean_std(v)[0] if v else math.nan
    parts = []
    for rel, strict in STRICT_OF.items():
        if rel not in models:
            continue
        r, p, s = mean(rel), mean("unet"), mean(strict)
        if math.isnan(r):
            continue
        cmp = []
        if not math.isnan(p):
            cmp.append(f"{(r / p - 1) * 100:+.0f}% vs unet")
        if not math.isnan(s):
            cmp.append(f"{(r / s - 1) * 100:+.0f}% vs {strict}")
        parts.append(f"{rel} {', '.join(cmp)}")
    ranked = sorted(((mean(m), m) for m in models if not math.isnan(mean(m))))
    if not ranked:
        return None
    return f"- {sc} {split}: best {ranked[0][1]} ({ranked[0][0]:.4f}); " + "; ".join(parts)


def verdicts(agg: Agg, scenarios: list[str], models: list[str],
             splits: list[str] = SPLITS) -> list[str]:
    """Plain statements: does each relaxed model beat plain and its strict counterpart?"""
    lines = []
    for sc in scenarios:
        for split in splits:
            v = _verdict(agg, sc, split, models)
            if v is not None:
                lines.append(v)
    return lines


def main_tables(agg: Agg, base: Base, scenarios: list[str], models: list[str],
                params: dict[str, int], nseeds: int) -> list[str]:
    """The main study: one table per split, models x scenarios, with persistence."""
    lines = []
    for split in SPLITS:
        lines += [f"### {split} RMSE", "",
                  "| model | params | " + " | ".join(scenarios) + " |",
                  "|---|---:|" + "---:|" * len(scenarios)]
        best = {}
        for sc in scenarios:
            ms = [(_cell_stats(agg, sc, m, split)[0], m) for m in models]
            ms = [x for x in ms if not math.isnan(x[0])]
            best[sc] = min(ms)[1] if ms else None
        for m in models:
            cells = [fmt_cell(*_cell_stats(agg, sc, m, split), nseeds,
                              bold=best[sc] == m) for sc in scenarios]
            lines.append(f"| {m} | {params.get(m, '–'):,} | " + " | ".join(cells) + " |"
                         if isinstance(params.get(m), int) else
                         f"| {m} | – | " + " | ".join(cells) + " |")
        lines.append("| *persistence* | 0 | " + " | ".join(
            f"{base[sc][split]:.4f}" if sc in base else "–" for sc in scenarios) + " |")
        lines.append("")
    return lines


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


def sweep_table(agg: Agg, base: Base, djobs: list[DataJob], dinfo: dict[str, dict],
                models: list[str], nseeds: int) -> list[str]:
    """The sweep: one row per breaking level and split, with the data equivariance error."""
    sweep = [d for d in djobs if d.level is not None]
    ms = [m for m in SWEEP_MODELS if m in models]
    lines = ["| level | data eq. error | split | " + " | ".join(ms) + " | persistence |",
             "|---:|---:|---|" + "---:|" * (len(ms) + 1)]
    for d in sweep:
        err = dinfo.get(d.key, {}).get("data_equivariance_error")
        for split in SPLITS:
            vals = [_cell_stats(agg, d.key, m, split) for m in ms]
            finite = [(v[0], i) for i, v in enumerate(vals) if not math.isnan(v[0])]
            bi = min(finite)[1] if finite else -1
            lines.append(f"| {d.level:g} | {err:.4f} | {split} | " if err is not None else
                         f"| {d.level:g} | – | {split} | ")
            lines[-1] += " | ".join(fmt_cell(*v, nseeds, bold=i == bi)
                                    for i, v in enumerate(vals))
            lines[-1] += f" | {base.get(d.key, {}).get(split, math.nan):.4f} |"
    return lines


def inputs_table(agg: Agg, base: Base, params_v: dict[str, int | None], nseeds: int,
                 inputs_ok: bool, why: str) -> list[str]:
    """The issue-7 variants: one row each, scenario x split columns, with persistence."""
    lines = ["| variant | model | params | " + " | ".join(
        f"{sc} {s}" for sc in INPUT_SCENARIOS for s in ("future", "domain")) + " |",
        "|---|---|---:|" + "---:|" * (2 * len(INPUT_SCENARIOS))]
    best = {}
    for sc in INPUT_SCENARIOS:
        for s in SPLITS:
            c = [(_cell_stats(agg, sc, lab, s)[0], lab) for lab, _, _ in INPUT_VARIANTS]
            c = [x for x in c if not math.isnan(x[0])]
            best[(sc, s)] = min(c)[1] if c else None
    for lab, m, br in INPUT_VARIANTS:
        cells = []
        for sc in INPUT_SCENARIOS:
            for s in SPLITS:
                v = _cell_stats(agg, sc, lab, s)
                cells.append(fmt_cell(*v, nseeds, bold=best[(sc, s)] == lab) if v[2] else
                             ("skipped" if br and not inputs_ok else "–"))
        p = params_v.get(lab)
        lines.append(f"| {lab} | {m}{' + ' + '+'.join(br) if br else ''} | "
                     f"{p:,} | " if isinstance(p, int) else f"| {lab} | {m} | – | ")
        lines[-1] += " | ".join(cells) + " |"
    lines.append("| *persistence* | – | 0 | " + " | ".join(
        f"{base.get(sc, {}).get(s, math.nan):.4f}" for sc in INPUT_SCENARIOS for s in SPLITS)
        + " |")
    if not inputs_ok:
        lines += ["", f"Variants with breaking inputs were skipped: {why}"]
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


def _ablation_rows(tasks: list[RunTask]) -> list[tuple[str, str, str, list[RunTask]]]:
    """(label, model, aggregate label, runs) of each ablation variant."""
    rows = []
    for label, m, extra, width_of in ABLATION_VARIANTS:
        key = label if (extra or width_of) else m
        ts = [t for t in tasks if t.model == m and not t.breaking_inputs
              and t.variant == (key if key == label else "")]
        rows.append((label, m, key, ts))
    return rows


def ablation_table(agg: Agg, tasks: list[RunTask], nseeds: int) -> list[str]:
    """The ablation: one row per variant with width, parameters, RMSE and relaxation."""
    cols = [(sc, s) for sc in ABLATION_SCENARIOS for s in SPLITS]
    lines = ["| variant | model | hidden | params | " + " | ".join(
        f"{sc} {s.split('-')[1]}" for sc, s in cols) + " | relaxation dev. "
        + " / ".join(ABLATION_SCENARIOS) + " |",
        "|---|---|---:|---:|" + "---:|" * (len(cols) + 1)]
    rows = _ablation_rows(tasks)
    best = {}
    for c in cols:
        v = [(_cell_stats(agg, c[0], k, c[1])[0], k) for _, _, k, _ in rows]
        v = [x for x in v if not math.isnan(x[0])]
        best[c] = min(v)[1] if v else None
    for label, m, key, ts in rows:
        cells = [fmt_cell(*_cell_stats(agg, sc, key, s), nseeds, bold=best[(sc, s)] == key)
                 for sc, s in cols]
        devs = []
        for sc in ABLATION_SCENARIOS:
            d = _deviations([t for t in ts if t.data_key == sc])
            devs.append(f"{sum(d) / len(d):.3f}" if d else "–")
        t0 = ts[0] if ts else None
        lines.append(f"| {label} | {m} | {t0.hidden if t0 else '–'} | "
                     f"{f'{t0.params:,}' if t0 else '–'} | " + " | ".join(cells)
                     + f" | {' / '.join(devs)} |")
    return lines


def relaxation_table(tasks: list[RunTask], dinfo: dict[str, dict], nseeds: int
                     ) -> list[str]:
    """How far the learned relaxation moved from equivariance, per dataset and model."""
    # does the relaxation find the breaking the data carry?
    rel = [m for m in STRICT_OF if any(t.model == m for t in tasks)]
    keys = list(dict.fromkeys(t.data_key for t in tasks))
    lines = ["| dataset | data eq. error | " + " | ".join(rel) + " |",
             "|---|---:|" + "---:|" * len(rel)]
    for k in keys:
        cells = []
        for m in rel:
            d = _deviations([t for t in tasks if t.data_key == k and t.model == m
                                 and not t.breaking_inputs and not t.variant])
            cells.append(fmt_cell(*mean_std(d), nseeds) if d else "–")
        if all(c == "–" for c in cells):
            continue
        err = dinfo.get(k, {}).get("data_equivariance_error")
        lines.append(f"| `{k}` | {'–' if err is None else f'{err:.4f}'} | "
                     + " | ".join(cells) + " |")
    return lines
