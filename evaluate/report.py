"""The report of an evaluation: ``metrics.csv``, ``summary.md``, ``summary.json`` and
the figures, written into a staging folder and moved into ``out`` when complete. The
evaluation job that fills it is :mod:`evaluate.job`."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from surrogate.diskfull import disk_full_error
from surrogate.folders import move_files_in, sibling

from . import plots
from .discovery import SymmetryVerdict, symmetry_markdown
from .equivariance import EquivarianceError, LayerRelaxation
from .markdown import fmt as _fmt
from .markdown import table as _table
from .rollout import RolloutResult
from .symmetry_sections import equivariance_section, relaxation_section

__all__ = ["ModelEvaluation", "write_metrics_csv", "write_summary", "write_report",
           "report_files", "sim_labels", "REPORT_FILES"]

#: columns of metrics.csv (besides model, checkpoint, split, step, lead_time, n_windows);
#: each has a ``<name>_std`` twin (standard deviation over windows)
CSV_METRICS = ("rmse", "rmse_velocity", "vrmse", "corr", "spectrum_error", "div_pred",
               "div_true")
#: the ratios to persistence that every table reports
RATIO_KEYS = ("rmse_velocity", "rmse")
#: rows of the per-simulation table in summary.md (summary.json has every simulation)
PER_SIM_ROWS = 12
#: the files every report writes; summary.json lists these and its figures (``files``)
REPORT_FILES = ("metrics.csv", "summary.md", "summary.json")


@dataclass
class ModelEvaluation:
    """Everything measured for one checkpoint."""

    label: str
    checkpoint: str
    model: str
    config: dict
    results: dict[str, RolloutResult] = field(default_factory=dict)
    equivariance: dict[str, EquivarianceError] = field(default_factory=dict)
    relaxation: list[LayerRelaxation] = field(default_factory=list)
    #: split -> persistence scored on this model's own windows (None for a baseline)
    persistence: dict[str, RolloutResult] = field(default_factory=dict)
    baseline: bool = False
    #: which symmetry the model keeps (on the equivariance histories of every split)
    symmetry: SymmetryVerdict | None = None

    def vs_persistence(self, split: str, key: str) -> float | None:
        """Model RMSE ``key`` / persistence RMSE ``key`` on the same windows."""
        r, p = self.results.get(split), self.persistence.get(split)
        if r is None or p is None or key not in r.summary or not p.summary.get(key):
            return None
        return r.summary[key] / p.summary[key]

    def ratios(self, split: str) -> dict[str, float]:
        """``key -> vs_persistence(split, key)`` for the keys of :data:`RATIO_KEYS` that
        both have."""
        return {k: v for k in RATIO_KEYS if (v := self.vs_persistence(split, k)) is not None}

    def per_simulation(self, split: str) -> list[dict]:
        """Per simulation of ``split``: ``sim``, ``n_windows``, the RMSEs of
        :data:`RATIO_KEYS` and their ratio to persistence on the same windows
        (``vs_persistence``), the largest all-field ratio first."""
        r, p = self.results.get(split), self.persistence.get(split)
        if r is None:
            return []
        base = p.by_simulation(RATIO_KEYS) if p is not None else {}
        rows = [{"sim": sim, **m, "vs_persistence": {
                    k: m[k] / base[sim][k] for k in RATIO_KEYS
                    if k in m and base.get(sim, {}).get(k)}}
                for sim, m in r.by_simulation(RATIO_KEYS).items()]
        return sorted(rows, key=lambda d: -d["vs_persistence"].get("rmse", 0.0))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"


def _pm(s: dict, key: str) -> str:
    if key not in s:
        return "n/a"
    return f"{_fmt(s[key])} ± {_fmt(s.get(key + '_std', 0.0), 2)}"


# -- writers -------------------------------------------------------------------------
def write_metrics_csv(evals: Sequence[ModelEvaluation], path: Path) -> Path:
    """One row per model, split and rollout step: the mean over windows of each metric
    and its standard deviation, plus every per-variable RMSE/VRMSE."""
    seen = dict.fromkeys(k for ev in evals for r in ev.results.values() for k in r.per_step)
    keys = [k for k in CSV_METRICS if k in seen] + [k for k in seen if k not in CSV_METRICS]
    header = ["model", "checkpoint", "split", "step", "lead_time", "n_windows"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header + [c for k in keys for c in (k, f"{k}_std")])
        for ev in evals:
            for split, res in ev.results.items():
                for s in range(res.windows.steps):
                    row: list[Any] = [ev.label, ev.checkpoint, split, s + 1,
                                      f"{(s + 1) * res.dt:.6g}", len(res.windows)]
                    for a in (res.per_step.get(k) for k in keys):
                        row += ["", ""] if a is None else [f"{float(np.mean(a[:, s])):.6g}",
                                                           f"{float(np.std(a[:, s])):.6g}"]
                    w.writerow(row)
    return path


def _summary_dict(evals: Sequence[ModelEvaluation], data_eq: tuple[float | None, str],
                  meta: dict) -> dict:
    out = {"meta": meta, "data_equivariance_error": data_eq[0],
           "data_equivariance_note": data_eq[1], "models": []}
    for ev in evals:
        out["models"].append({
            "label": ev.label, "checkpoint": ev.checkpoint, "model": ev.model,
            "splits": {s: {**r.summary, "windows_note": r.windows.note}
                       for s, r in ev.results.items()},
            "baseline": ev.baseline,
            "vs_persistence": {s: ev.ratios(s) for s in ev.results if not ev.baseline},
            "per_simulation": {s: ev.per_simulation(s) for s in ev.results
                               if not ev.baseline},
            "equivariance_error": {s: asdict(e) for s, e in ev.equivariance.items()},
            "relaxation": [{"layer": l.name, "kind": l.kind, "shape": list(l.shape),
                            "relative_deviation": l.relative_deviation,
                            "symmetry": l.symmetry, "violations": l.violations,
                            "profile": l.profile}  # arrays as lists by _json_default
                           for l in ev.relaxation],
            "symmetry": ev.symmetry.to_dict() if ev.symmetry is not None else None,
        })
    return out


def write_summary(evals: Sequence[ModelEvaluation], splits: Sequence[str],
                  data_eq: tuple[float | None, str], figures: Sequence[Path], out: Path,
                  meta: dict) -> Path:
    """``summary.md``: the paper's table (models x test-future / test-domain RMSE), one
    table of every metric per split, equivariance errors and the learned symmetry."""
    L = _md_header(evals, splits, meta)
    for s in splits:
        L += _md_split(evals, s)
        L += _md_per_simulation(evals, s, meta.get("sim_labels", {}))
    L += equivariance_section(evals, data_eq)
    L += symmetry_markdown({ev.label: ev.symmetry for ev in evals if ev.symmetry})
    L += relaxation_section(evals)
    if figures:
        rels = [os.path.relpath(p, out) for p in figures]
        L += ["## Figures", ""] + [f"- [{r}]({r})" if p.suffix != ".png" else f"![{r}]({r})"
                                   for p, r in zip(figures, rels)] + [""]
    path = out / "summary.md"
    path.write_text("\n".join(L))
    return path


def _md_header(evals: Sequence[ModelEvaluation], splits: Sequence[str], meta: dict
               ) -> list[str]:
    """Title, data line, warnings and the headline RMSE table with the ratios."""
    vel = any("rmse_velocity" in r.summary for ev in evals for r in ev.results.values())
    main = "rmse_velocity" if vel else "rmse"
    L = ["# Evaluation summary", "",
         f"Data: {', '.join(meta['data'])} ({meta.get('scenario') or 'scenario n/a'}, "
         f"frame spacing dt = {_fmt(meta['dt'])}); rollouts of {meta['steps']} steps "
         f"after T_in given frames, which are never scored. Mean ± std over windows.", ""]
    for w in meta.get("warnings", []):
        L += [f"> warning: {w}", ""]
    L += [f"## RMSE ({'velocity u, v: the paper metric' if vel else 'all channels'}, "
          f"physical units, over {meta['steps']} steps)", "",
          "*vs persistence*: the model's RMSE divided by that of persistence (repeating "
          "the last given frame) on the same windows; below 1 the model beats "
          "\"nothing changes\". Velocity RMSE ratio, then the ratio over all fields.", ""]
    rows = []
    for ev in evals:
        rows.append([ev.label])
        for s in splits:
            ratios = ev.ratios(s).values()
            rows[-1] += [_pm(ev.results[s].summary, main) if s in ev.results else "n/a",
                         "1 (reference)" if ev.baseline else
                         " / ".join(f"{v:.2f}x" for v in ratios) if ratios else "n/a"]
    cols = ["model"] + [c for s in splits for c in (s, "vs persistence")]
    return L + _table(cols, rows) + [""]


def _md_split(evals: Sequence[ModelEvaluation], s: str) -> list[str]:
    """Every metric of split ``s``, per model, with per-variable RMSEs and notes."""
    have = [ev for ev in evals if s in ev.results]
    rows = []
    for ev in have:
        m, eq = ev.results[s].summary, ev.equivariance.get(s)
        cens = m.get("corr_time_censored", 0.0)
        # windows that never drop below the threshold count the rollout length: the
        # mean is then a lower bound, and the table says for what share of windows
        ct = _pm(m, "corr_time_steps") + (" (≥, censored)" if cens >= 1 else
                                          f" (≥; {cens:.0%} censored)" if cens > 0 else "")
        rows.append([
            ev.label, str(m.get("n_windows", 0)), _pm(m, "rmse"),
            "1" if ev.baseline else _fmt(ev.vs_persistence(s, "rmse"), 3),
            _pm(m, "vrmse"), ct, _fmt(m.get("corr_time")), _pm(m, "spectrum_error"),
            _fmt(m.get("div_pred")), _fmt(m.get("div_true")),
            f"{_fmt(eq.mean)} ({eq.group})" if eq is not None else "n/a"])
    L = [f"## {s}", ""] + _table(
        ["model", "windows", "RMSE (all)", "vs persistence", "VRMSE", "corr. time (steps)",
         "corr. time", "spectrum err.", "div(pred)", "div(true)", "equiv. err."], rows) + [""]
    per_var = sorted({k for ev in have for k in ev.results[s].summary
                      if re.fullmatch(r"(rmse|vrmse)_(?!velocity)[A-Za-z0-9_]+", k)
                      and not k.endswith("_std")})
    if per_var:
        L += ["Per variable: " + "; ".join(
            f"{ev.label}: " + ", ".join(f"{k} {_fmt(ev.results[s].summary[k])}"
                                        for k in per_var) for ev in have), ""]
    notes = [f"- {ev.label}: {ev.results[s].windows.note}" for ev in have
             if ev.results[s].windows.note]
    return L + notes + ([""] if notes else [])


def _md_per_simulation(evals: Sequence[ModelEvaluation], s: str,
                       sim_labels: dict[int, str]) -> list[str]:
    """Which simulations of split ``s`` are hard: each model's ratio to persistence per
    simulation (velocity / all fields), the largest first."""
    models = [ev for ev in evals if not ev.baseline and s in ev.results]
    tables = {ev.label: {d["sim"]: d for d in ev.per_simulation(s)} for ev in models}
    sims = sorted({sim for t in tables.values() for sim in t}, key=lambda sim: -max(
        t[sim]["vs_persistence"].get("rmse", 0.0) for t in tables.values() if sim in t))
    if len(sims) < 2:   # one simulation: the table above says it all
        return []
    shown = sims[:PER_SIM_ROWS]
    what = (f"the {len(shown)} of {len(sims)} simulations with the largest ratio over "
            "all fields" if len(shown) < len(sims) else
            f"all {len(sims)} simulations, the largest ratio over all fields first")
    rows = []
    for sim in shown:
        first = next(t[sim] for t in tables.values() if sim in t)
        name = f"{sim} ({sim_labels[sim]})" if sim_labels.get(sim) else str(sim)
        ratios = [tables[ev.label].get(sim, {}).get("vs_persistence", {}) for ev in models]
        rows.append([name, str(first["n_windows"])] +
                    [" / ".join(f"{v:.2f}" for v in r.values()) or "n/a" for r in ratios])
    return [f"Per simulation ({what}; vs persistence on the same windows, velocity / all "
            "fields; every simulation in summary.json):", ""] + _table(
        ["sim", "windows"] + [ev.label for ev in models], rows) + [""]


def sim_labels(ds, most: int = 3) -> dict[int, str]:
    """``sim index -> "name value, ..."``: the dataset's numeric per-simulation
    coordinates that vary between simulations (at most ``most``, in the file's order),
    keyed by position along ``sim`` (as windows index simulations)."""
    def varies(c) -> bool:
        v = c.values[~np.isnan(c.values)] if c.dtype.kind == "f" else c.values
        return np.unique(v).size > 1
    names = [n for n, c in ds.coords.items() if c.dims == ("sim",) and n != "sim"
             and c.dtype.kind in "iuf" and varies(c)][:most]
    return {i: ", ".join(f"{n} {ds[n].values[i]:.4g}" for n in names)
            for i in range(ds.sizes["sim"])}


# -- the job -------------------------------------------------------------------------
def log(msg: str, verbose: bool) -> None:
    if verbose:
        print(msg, file=sys.stderr, flush=True)


def write_report(evals: list, split_names: list[str], data_eq, meta: dict, out: Path,
                  quantities: list[str] | None, plot_steps, gif: bool,
                  verbose: bool) -> Path:
    """Write metrics.csv, the figures (``quantities`` None: none), summary.md and
    summary.json into a staging folder, then move them into ``out`` in place of the old
    report's files (summary.json last); every other file of ``out`` stays."""
    stage = sibling(out, "partial")  # a killed run's is gone (:func:`run` cleared it)
    try:
        stage.mkdir(parents=True)
        figs = _stage_report(evals, split_names, data_eq, meta, stage, quantities,
                             plot_steps, gif)
    except BaseException as e:
        full = disk_full_error(e, out)  # before the staged files go: they fill the disk
        shutil.rmtree(stage, ignore_errors=True)  # made by this process; ``out`` untouched
        if full is not None:
            raise full from e
        raise
    old = report_files(out)
    kept = sorted(p.name for p in out.iterdir() if p.name not in old
                  and not (stage / p.name).exists()) if out.is_dir() else []
    move_files_in(stage, out, old, last="summary.json")
    log(f"wrote {out / 'summary.md'}, {out / 'metrics.csv'} and {len(figs)} figure(s)"
         + (f"; kept {len(kept)} other file(s) of {out}: {', '.join(kept)}" if kept else ""),
         verbose)
    return out


def _stage_report(evals: list, split_names: list[str], data_eq, meta: dict, stage: Path,
                  quantities: list[str] | None, plot_steps, gif: bool) -> list[Path]:
    """Write the report's files into ``stage``; its figures."""
    write_metrics_csv(evals, stage / "metrics.csv")
    figs = (_figures(evals, split_names, stage, quantities, plot_steps, gif)
            if quantities is not None else [])
    write_summary(evals, split_names, data_eq, figs, stage, meta)
    summary = _summary_dict(evals, data_eq, meta)
    summary["files"] = sorted({*REPORT_FILES, *(p.name for p in figs)})
    (stage / "summary.json").write_text(json.dumps(summary, indent=1,
                                                   default=_json_default))
    return figs


def report_files(out: Path) -> list[str]:
    """The names of the files of the report in folder ``out``: the ones every report
    writes and the figures its summary.json lists (none listed: the report predates the
    list, and its figures count as other files)."""
    try:
        listed = json.loads((out / "summary.json").read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        listed = []
    if not isinstance(listed, list):
        listed = []
    return sorted({*REPORT_FILES, *(n for n in listed
                                    if isinstance(n, str) and Path(n).name == n)})


def _json_default(o: Any) -> Any:
    return o.tolist() if isinstance(o, (np.floating, np.integer, np.ndarray)) else str(o)


def _figures(evals: Sequence[ModelEvaluation], splits: Sequence[str], out: Path,
             quantities: Sequence[str], plot_steps, gif: bool) -> list[Path]:
    """Per split the error curves, rollout panels and GIFs; the symmetry each model
    keeps; per model its relaxation."""
    figs: list[Path] = []
    for s in splits:
        have = [ev for ev in evals if s in ev.results]
        if not have:
            continue
        dt = have[0].results[s].dt
        for key, name in (("rmse", "RMSE"), ("vrmse", "VRMSE"), ("corr", "correlation")):
            curves = {ev.label: (ev.results[s].per_step[key].mean(axis=0),
                                 ev.results[s].per_step[key].std(axis=0))
                      for ev in have if key in ev.results[s].per_step}
            if curves:
                figs.append(plots.error_vs_step(
                    curves, out / f"{key}_vs_step_{s}.png", name, dt,
                    title=f"{name} vs lead time, {s}",
                    baselines=[ev.label for ev in have if ev.baseline]))
        models = [ev for ev in have if not ev.baseline]  # panels and GIFs: models only
        figs += _rollout_figures(models, s, out, quantities, plot_steps, gif, dt)
    verdicts = {ev.label: ev.symmetry for ev in evals if ev.symmetry is not None}
    if verdicts:
        figs.append(plots.symmetry_bars(verdicts, out / "symmetry.png"))
    for ev in evals:
        # a combo net's two output weights are in the summary's table: no figure
        if any(l.kind != "combo" for l in ev.relaxation):
            figs.append(plots.relaxation_heatmaps(
                ev.relaxation, out / f"relaxation_{_slug(ev.label)}.png",
                title=f"learned relaxation weights: {ev.label}"))
    return figs


def _rollout_figures(models: Sequence[ModelEvaluation], s: str, out: Path,
                     quantities: Sequence[str], plot_steps, gif: bool, dt: float
                     ) -> list[Path]:
    """Rollout panels of split ``s`` (one figure for all models when they share their
    example window) and, with ``gif``, one GIF per model."""
    if not models:
        return []
    first = models[0].results[s].examples
    same = all(np.array_equal(ev.results[s].examples.get(k), first.get(k))
               for ev in models for k in ("sims", "starts"))
    figs: list[Path] = []
    for grp in [models] if same and len(models) > 1 else [[ev] for ev in models]:
        ex = grp[0].results[s].examples
        if "true" not in ex:
            continue
        tag = "compare" if len(grp) > 1 else _slug(grp[0].label)
        preds = {ev.label: ev.results[s].examples["pred"][0] for ev in grp}
        for i, quantity in enumerate(quantities):
            suffix = "" if i == 0 else f"_{quantity}"
            figs.append(plots.rollout_panels(
                ex["true"][0], preds, out / f"rollout_{s}_{tag}{suffix}.png", ex["channels"],
                ex["velocity"], steps=plot_steps, quantity=quantity, x=ex["x"], y=ex["y"], dt=dt,
                title=f"{s}: sim {int(ex['sims'][0])}, start frame "
                      f"{int(ex['starts'][0])} ({quantity}, arrows: velocity)"))
    for ev in models if gif else []:
        ex = ev.results[s].examples
        if "true" in ex:
            figs.append(plots.rollout_gif(
                ex["true"][0], ex["pred"][0], out / f"rollout_{s}_{_slug(ev.label)}.gif",
                ex["channels"], ex["velocity"], quantities[0], ex["x"], ex["y"], dt,
                title=f"{ev.label}, {s}"))
    return figs
