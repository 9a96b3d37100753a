"""The evaluation job: checkpoints x splits -> ``metrics.csv``, ``summary.md``,
``summary.json`` and figures.

>>> import evaluate
>>> evaluate.run(["runs/rg/best.pt", "runs/unet/best.pt"], "data/rotation.nc",
...              splits=["test-future", "test-domain"], steps=20, out="results/cmp")
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from surrogate.devices import DeviceError, resolve_device
from surrogate.diskfull import disk_full_error
from surrogate.folders import clear_leftovers, hold, move_files_in, sibling

from . import plots
from .baselines import PERSISTENCE_LABEL, Persistence
from .discovery import SymmetryVerdict, discover_symmetry, symmetry_markdown
from .equivariance import (EquivarianceError, LayerRelaxation, data_equivariance_error,
                           model_equivariance_error, relaxation_summary)
from .markdown import fmt as _fmt
from .markdown import table as _table
from .rollout import (EvaluationError, RolloutResult, Windows, as_list, build_windows,
                      display_split, evaluate_split, iter_batches, load_aux, load_frames,
                      open_data)

__all__ = ["run", "ModelEvaluation", "write_metrics_csv", "write_summary"]

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


def _labels(paths: Sequence[Path], names: Sequence[str]) -> list[str]:
    """Distinct display names: a repeated model name gets its run folder, then the file
    stem, then its position appended."""
    labels = [f"{n}@{p.parent.name}" if names.count(n) > 1 and p.parent.name else n
              for p, n in zip(paths, names)]
    for suffix in (lambda i: f"/{paths[i].stem}", lambda i: f"#{i + 1}"):
        for i, l in enumerate(labels):
            if labels.count(l) > 1:
                labels[i] = l + suffix(i)
    return labels


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
    L += _md_equivariance(evals, data_eq)
    L += symmetry_markdown({ev.label: ev.symmetry for ev in evals if ev.symmetry})
    L += _md_relaxation(evals)
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


def _md_equivariance(evals: Sequence[ModelEvaluation], data_eq: tuple[float | None, str]
                     ) -> list[str]:
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


def _md_relaxation(evals: Sequence[ModelEvaluation]) -> list[str]:
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


# -- the job -------------------------------------------------------------------------
def _log(msg: str, verbose: bool) -> None:
    if verbose:
        print(msg, file=sys.stderr, flush=True)


def run(checkpoints: str | os.PathLike | Sequence[str | os.PathLike],
        data: str | os.PathLike | Sequence[str | os.PathLike],
        splits: str | Sequence[str] = ("test-future", "test-domain"), steps: int = 20,
        out: str | os.PathLike = "results", *, device: str = "auto", batch_size: int = 32,
        stride: int | None = None, max_windows: int | None = None,
        equivariance_windows: int = 8, group: str | None = None,
        discovery_group: str = "D4", labels: Sequence[str] | None = None,
        figures: bool = True, gif: bool = True,
        quantity: str | Sequence[str] = "speed", plot_steps: Sequence[int] | None = None,
        verbose: bool = False, overwrite: bool = False,
        key: bytes | str | None = None) -> Path:
    """Evaluate ``checkpoints`` on ``splits`` of ``data`` and write the report to ``out``;
    returns ``out``, raises :class:`EvaluationError` (a ``ValueError``) for bad input.

    Each checkpoint's split spec decides the windows (:func:`build_windows`; ``stride`` /
    ``max_windows`` thin them); each window's history is rolled out ``steps`` steps and
    scored per step. Persistence (the last given frame repeated) is scored on every
    model's windows: a row of its own in every table, a dashed line in every error curve
    and a "vs persistence" ratio per model. ``equivariance_windows`` histories per split
    give the model equivariance error (``group``: default the model's, C4 for ``unet``;
    ``"D4"`` adds mirrors) and, pooled over the splits, the symmetry each model keeps
    (:func:`evaluate.discovery.discover_symmetry` on ``discovery_group``, C4 or D4).
    Writes ``metrics.csv``, ``summary.md``, ``summary.json`` and
    (``figures``) PNGs plus (``gif``) one GIF per model and split; ``quantity``: the
    field(s) of the rollout panels (``speed``, ``vorticity``, ``density``; one figure
    each, the GIFs show the first). ``out`` must be new or empty unless ``overwrite``,
    which replaces the report's files only (every other file stays); one process at a
    time owns ``out`` (:func:`surrogate.folders.hold`). The report is written into a
    sibling folder ``.NAME.partial`` and moved in only when complete, so a failed
    evaluation never leaves a half-written or lost report (a full disk raises the one-line
    ``surrogate.diskfull.DiskFullError``; a killed run's ``.NAME.partial`` is removed by
    the next run of ``out``). ``key``: refuse checkpoints not signed with it
    (:func:`surrogate.load`). Non-finite values in the evaluated frames give a warning
    naming split, simulation and frame."""
    out = Path(out)
    try:
        device = str(resolve_device(device))  # before any file is read
    except DeviceError as e:
        raise EvaluationError(str(e)) from None
    if discovery_group not in ("C4", "D4"):
        raise EvaluationError(f"discovery group must be C4 or D4, got {discovery_group!r}")
    ckpts, split_names, quantities = _check_request(checkpoints, splits, steps, labels,
                                                    quantity, group, plot_steps)
    with hold(out, EvaluationError):
        clear_leftovers(out, "partial")  # what a killed or failed run of ``out`` left
        _check_out(out, overwrite)
        return _run(ckpts, data, split_names, steps, out, device, batch_size, stride,
                    max_windows, equivariance_windows, group, labels,
                    quantities if figures else None, plot_steps, gif, verbose, key,
                    discovery_group)


def _run(ckpts: list[Path], data, split_names: list[str], steps: int, out: Path,
         device: str, batch_size: int, stride, max_windows, equivariance_windows: int,
         group, labels, quantities: list[str] | None, plot_steps, gif: bool,
         verbose: bool, key, discovery_group: str = "D4") -> Path:
    """:func:`run` once its request is checked and ``out`` is held."""
    ds = open_data(data)
    data_paths = [str(d) for d in as_list(data)]
    models = _load_models(ckpts, device, key)
    _check_length(models, ckpts, ds, steps)
    labels = list(labels) if labels is not None else _labels(ckpts, [m.name for m in models])

    t0 = time.time()
    _log(f"evaluating {len(models)} model(s) on {', '.join(split_names)} of "
         f"{', '.join(data_paths)}", verbose)
    data_eq = data_equivariance_error(ds)
    job = _Job(ds, split_names, int(steps), batch_size, stride, max_windows,
               equivariance_windows, group, verbose, discovery_group)
    evals = [_evaluate_model(job, sur, label, ckpt, data_paths)
             for ckpt, sur, label in zip(ckpts, models, labels)]
    evals.append(_persistence_row(evals, split_names))

    scen = ds.attrs.get("scenario")
    dt = next((r.dt for ev in evals for r in ev.results.values()), 1.0)
    meta = {"data": data_paths, "scenario": str(scen) if scen is not None else None,
            "dt": dt, "steps": int(steps), "splits": split_names,
            "checkpoints": [str(c) for c in ckpts], "device": str(models[0].device),
            "seconds": round(time.time() - t0, 2), "warnings": job.warnings,
            "sim_labels": sim_labels(ds)}
    return _write_report(evals, split_names, data_eq, meta, out, quantities, plot_steps,
                         gif, verbose)


def _write_report(evals: list, split_names: list[str], data_eq, meta: dict, out: Path,
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
    _log(f"wrote {out / 'summary.md'}, {out / 'metrics.csv'} and {len(figs)} figure(s)"
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


def _check_request(checkpoints, splits, steps, labels, quantity, group, plot_steps=None
                   ) -> tuple[list[Path], list[str], list[str]]:
    """The checkpoint paths, split names and quantities of a request, or a one-line
    :class:`EvaluationError` (before any file is read)."""
    ckpts = [Path(c) for c in as_list(checkpoints)]
    if not ckpts:
        raise EvaluationError("no checkpoint given")
    split_list = [splits] if isinstance(splits, str) else list(splits)
    if not split_list:
        raise EvaluationError("no split given")
    split_names = list(dict.fromkeys(display_split(s) for s in split_list))
    if int(steps) < 1:
        raise EvaluationError(f"steps must be >= 1, got {steps}")
    if labels is not None and len(labels) != len(ckpts):
        raise EvaluationError(f"{len(labels)} labels for {len(ckpts)} checkpoints")
    quantities = [quantity] if isinstance(quantity, str) else list(quantity)
    bad = [q for q in quantities if q not in plots.QUANTITIES]
    if bad or not quantities:
        raise EvaluationError(f"unknown quantity {(bad or [None])[0]!r}; choose from "
                              f"{', '.join(plots.QUANTITIES)}")
    if group is not None and group not in ("C4", "D4"):
        raise EvaluationError(f"group must be C4 or D4 (grid-exact), got {group!r}")
    bad = [p for p in (plot_steps or ()) if not (isinstance(p, (int, np.integer))
                                                 and 1 <= p <= int(steps))]
    if bad:
        raise EvaluationError(f"plot step {bad[0]!r} is outside the rollout: plot steps "
                              f"(--plot-steps) must be in 1..{int(steps)} (--steps)")
    for c in ckpts:
        if not c.is_file():
            raise EvaluationError(f"{c}: no such checkpoint file")
    return ckpts, split_names, quantities


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder without ``overwrite`` (``out`` is held)."""
    if out.exists() and not out.is_dir():
        raise EvaluationError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise EvaluationError(f"{out} is not empty; pass --overwrite (overwrite=True) to "
                              "replace the report in it (other files are kept), or "
                              "choose another --out")


def _load_models(ckpts: Sequence[Path], device: str, key) -> list:
    from surrogate.checkpoint import CheckpointError
    from surrogate.forecast import ForecastError, load

    try:
        return [load(c, device=device, key=key) for c in ckpts]
    except (CheckpointError, ForecastError) as e:
        raise EvaluationError(str(e)) from e


def _check_length(models: Sequence, ckpts: Sequence[Path], ds, steps: int) -> None:
    """Every model's history plus ``steps`` frames fit in the data (checked before any
    model is evaluated, not when a later one reaches its windows)."""
    n_time = int(ds.sizes["time"])
    for sur, ckpt in zip(models, ckpts):
        if sur.T_in + steps > n_time:
            raise EvaluationError(
                f"the data have {n_time} frames, too few for T_in + steps = {sur.T_in} + "
                f"{steps} ({ckpt}); --steps can be at most {max(n_time - sur.T_in, 0)}")


@dataclass
class _Job:
    """What every model of one :func:`run` is evaluated on, and the warnings so far."""
    ds: Any
    splits: list[str]
    steps: int
    batch_size: int
    stride: int | None
    max_windows: int | None
    equivariance_windows: int
    group: str | None
    verbose: bool
    discovery_group: str = "D4"
    warnings: list[str] = field(default_factory=list)
    cache: dict = field(default_factory=dict)   # persistence results per window set

    def warn(self, msg: str, always: bool = False) -> None:
        self.warnings.append(msg)
        _log(f"warning: {msg}", self.verbose or always)


def _evaluate_model(job: _Job, sur, label: str, ckpt: Path,
                    data_paths: Sequence[str]) -> ModelEvaluation:
    """One model on every split: rollout metrics, equivariance error, persistence."""
    ds = job.ds
    missing = [v for v in sur.layout.channels if v not in ds.data_vars]
    if missing:
        raise EvaluationError(f"data lack variable(s) {missing} that {label} needs")
    grid = sur.grid
    if grid is not None and (int(ds.sizes["y"]), int(ds.sizes["x"])) != grid:
        raise EvaluationError(f"{label} was trained on a {grid[0]}x{grid[1]} grid, "
                              f"the data are {ds.sizes['y']}x{ds.sizes['x']}")
    trained_on = [os.path.basename(f) for f in sur.record.data.files]
    given = [os.path.basename(p) for p in data_paths]
    if trained_on and trained_on != given:
        job.warn(f"{label} was trained on {', '.join(trained_on)}; evaluated on "
                 f"{', '.join(given)} (split windows index the given files)")
    ev = ModelEvaluation(label, str(ckpt), sur.name, dict(sur.model.config),
                         relaxation=relaxation_summary(sur))
    hists = [_evaluate_split_of(job, sur, label, split, ev) for split in job.splits]
    aux = None if hists[0][1] is None else torch.cat([a for _, a, _ in hists])
    ev.symmetry = discover_symmetry(sur, torch.cat([h for h, _, _ in hists]),
                                    job.discovery_group, aux=aux,
                                    targets=torch.cat([y for _, _, y in hists]))
    _log(f"  {label}: {ev.symmetry.verdict}", job.verbose)
    return ev


def _evaluate_split_of(job: _Job, sur, label: str, split: str, ev: ModelEvaluation
                       ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Rollout metrics, equivariance error and persistence of one split; returns the
    equivariance histories ``(B, T_in, C, H, W)`` and their aux fields (or None)."""
    from surrogate.forecast import ForecastError

    ds, channels = job.ds, list(sur.layout.channels)
    windows = build_windows(sur.record, split, ds, sur.T_in, job.steps, job.stride,
                            job.max_windows)
    t = time.time()
    try:
        res = ev.results[split] = evaluate_split(sur, ds, windows, job.batch_size, keep=1)
    except ForecastError as e:
        raise EvaluationError(f"{label}: {e}") from e
    if not all(math.isfinite(v) for v in res.summary.values() if isinstance(v, float)):
        job.warn(f"{label} / {split}: non-finite metrics; "
                 f"{_first_nonfinite(ds, windows, channels)}", always=True)
    eq_windows = windows.subset(job.equivariance_windows)
    pairs = list(iter_batches(ds, eq_windows, channels, job.batch_size))
    hist = np.concatenate([h for _, h, _ in pairs])
    nxt = torch.from_numpy(np.concatenate([t[:, 0] for _, _, t in pairs]))  # true next frames
    aux = (torch.from_numpy(load_aux(ds, sur.aux_channels, eq_windows.sims))
           if sur.aux_channels else None)
    hist = torch.from_numpy(hist)
    eq = ev.equivariance[split] = model_equivariance_error(sur, hist, group=job.group,
                                                           aux=aux)
    ev.persistence[split] = _persistence(sur, ds, windows, job.batch_size, job.cache)
    _log(f"  {label} / {split}: {len(windows)} windows, RMSE "
         f"{_fmt(res.summary.get('rmse'))}, equivariance error "
         f"{_fmt(eq.mean)} ({time.time() - t:.1f} s)", job.verbose)
    return hist, aux, nxt


def _first_nonfinite(ds, windows: Windows, channels: Sequence[str]) -> str:
    """Where the first NaN/inf of the frames the windows read lies."""
    for sim, (lo, hi) in windows.spans().items():
        bad = ~np.isfinite(load_frames(ds, channels, sim, lo, hi))  # (T, C, H, W)
        if bad.any():
            t, c = np.argwhere(bad.any(axis=(2, 3)))[0]
            return (f"the data hold non-finite values in simulation {sim}, frame "
                    f"{lo + int(t)}, variable {channels[int(c)]!r}")
    return "the data are finite there: the model's rollout diverged"


def _persistence(sur, ds, windows, batch_size: int,
                 cache: dict[bytes, RolloutResult]) -> RolloutResult:
    """Persistence scored on ``windows`` (computed once per distinct window set)."""
    key = (np.asarray(windows.sims).tobytes() + b"|" + np.asarray(windows.starts).tobytes()
           + f"|{windows.T_in}|{windows.steps}|{','.join(sur.layout.channels)}".encode())
    if key not in cache:
        cache[key] = evaluate_split(Persistence(sur.layout, sur.T_in), ds, windows,
                                    batch_size, keep=1)
    return cache[key]


def _persistence_row(evals: Sequence[ModelEvaluation], splits: Sequence[str]
                     ) -> ModelEvaluation:
    """The persistence baseline as a row of its own, on the first model's windows."""
    first = evals[0].persistence
    res = {s: first[s] for s in splits if s in first}
    return ModelEvaluation(PERSISTENCE_LABEL, "", PERSISTENCE_LABEL, {}, res,
                           persistence=dict(res), baseline=True)


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
