"""Write ``docs/results.md``: the current benchmark results, generated from the committed
JSON (and CSV) in ``benchmarks/results/``::

    python benchmarks/results_page.py            # rewrites docs/results.md
    python benchmarks/results_page.py --out -    # prints it

Sections: the current main study (ratios to persistence per model and scenario, for each
test split and metric, mean ± std over seeds; the runs of
``accuracy.merge.MAIN_SOURCES``) and the regime map's headline table (test-domain, all
fields, every variant of ``regime/regime_cpu.json``). Which results are current is
decided in ``benchmarks/results/README.md``; rerun this script whenever a source changes
(``tests/benchmarks/test_results_page.py`` fails until then).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from accuracy.merge import (MAIN_MODELS, MAIN_SCENARIOS, MAIN_SOURCES, RESULTS,  # noqa: E402
                            Ratios, largest, mean_std, ratios)

ROOT = HERE.parent
PAGE = ROOT / "docs" / "results.md"
REGIME_JSON = RESULTS / "regime" / "regime_cpu.json"
FRONTIER_JSON = RESULTS / "frontier" / "frontier.json"
STRIDE_JSON = RESULTS / "stride" / "stride.json"
SPLIT_NAMES = {"test-domain": "test-domain (held-out simulations)",
               "test-future": "test-future (later times of the training simulations)"}


def _rel(p: Path) -> str:
    """``p`` relative to the repository root (as given when outside it)."""
    p = p.resolve()
    return p.relative_to(ROOT).as_posix() if p.is_relative_to(ROOT) else p.as_posix()


def cell(values: list[float], total: int, digits: int = 3, bold: bool = False) -> str:
    """"mean ± std" over seeds; "(n of N seeds)" when seeds are missing; "–" for none."""
    if not values:
        return "–"
    m, s = mean_std(values)
    txt = f"{m:.{digits}f}" if len(values) == 1 else f"{m:.{digits}f} ± {s:.{digits}f}"
    if len(values) < total:
        txt += f" ({len(values)} of {total} seeds)"
    return f"**{txt}**" if bold else txt


def _best(means: dict[str, float]) -> str | None:
    """The key of the lowest finite mean."""
    finite = {k: v for k, v in means.items() if not math.isnan(v)}
    return min(finite, key=finite.get) if finite else None


def _params(values: set[int]) -> str:
    """A parameter count (or range) with thousands separators."""
    vals = sorted(v for v in values if v)
    if not vals:
        return "–"
    return f"{vals[0]:,}" if vals[0] == vals[-1] else f"{vals[0]:,}–{vals[-1]:,}"


def _late(settings: dict) -> str:
    """How the training runs start (late starts, late twins), from the settings."""
    late = settings["data"].get("late_start", 0)
    if not late:
        return "every run recorded from rest"
    twins = [sc for sc in MAIN_SCENARIOS
             if settings["scenario_params"].get(sc, {}).get("late_twins")]
    text = (f"the training runs of odd magnitude index recorded after {late} warm-up "
            f"solver steps")
    if twins:
        text += (f" (on {', '.join(f'`{t}`' for t in twins)}: every run from rest, plus "
                 f"such a late-started twin of each)")
    return text


def main_conditions(sources=MAIN_SOURCES) -> tuple[str, int]:
    """The paragraph of conditions of the main study (from its JSON), and its seed count."""
    metas = [json.loads((f / "accuracy_cpu.json").read_text()) for f, _ in sources]
    dates = sorted(m["date"][:10] for m in metas)
    machines = sorted({m["machine"] for m in metas})
    seeds = sorted({s for m in metas for s in m["seeds"]})
    st = metas[-1]["settings"]
    d, tr, ev, mo = st["data"], st["train"], st["eval"], st["model"]
    rec = tr["recipe"]
    weights = ", ".join(f"{k} {v:g}" for k, v in rec.get("loss_weights", {}).items())
    folders = ", ".join(
        f"[`{f.name}/`](../{_rel(f)}/) (seed{'s' if len(m['seeds']) > 1 else ''} "
        f"{', '.join(map(str, m['seeds']))} of {', '.join(sc)})"
        for (f, sc), m in zip(sources, metas))
    when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    text = (
        f"Run on {when}, {'; '.join(machines)}; "
        f"{metas[-1]['versions']}. Seeds {', '.join(map(str, seeds))}, from "
        f"{folders}. Data: {d['resolution']}x{d['resolution']} smoke plumes, "
        f"{d['steps']} solver steps stored every {d['save_every']}; {_late(st)}. "
        f"Models: depth "
        f"{mo['depth']}, about {mo['params']:,} parameters each. Recipe: T_in {tr['T_in']}, "
        f"K {tr['K']}, batch {tr['batch_size']}, {tr['epochs']} epochs x "
        f"{tr['max_steps_per_epoch']} steps, lr {tr['lr']:g}, {rec['targets']} targets, "
        f"persistence initialisation {'on' if rec.get('persistence_init') else 'off'}, "
        f"noise {rec.get('noise', 0):g}, {rec.get('schedule')} schedule"
        f"{', loss weights ' + weights if weights else ''}"
        f"{', forecasts bounded below (density >= 0)' if rec.get('nonnegative') else ''}. "
        f"Scored on {ev['steps']}-step rollouts, at most {ev['max_windows']} windows per "
        f"split. Cells: RMSE over persistence's on the same windows (below 1 beats "
        f"persistence; lower is better), mean ± sample std over seeds; bold: best of the "
        f"column.")
    return text, len(seeds)


def beats_persistence(rat: Ratios) -> str:
    """Whether every run beats persistence, and the largest single-run ratio."""
    worst = max(max(r.velocity, r.all) for rs in rat.values() for r in rs)
    head = ("Every run beats persistence in both metrics on both splits" if worst < 1 else
            "Not every run beats persistence")
    text = largest(rat)
    return f"{head}; {text[0].lower()}{text[1:]}."


def main_tables(rat: Ratios, nseeds: int) -> list[str]:
    """Four tables (test split x metric): rows the models, columns the scenarios."""
    out: list[str] = []
    for split in ("test-domain", "test-future"):
        for metric, name in (("all", "all fields"), ("velocity", "velocity (u, v)")):
            vals = {(m, sc): [getattr(r, metric) for r in rat.get((sc, m, split), [])]
                    for m in MAIN_MODELS for sc in MAIN_SCENARIOS}
            best = {sc: _best({m: mean_std(vals[(m, sc)])[0] for m in MAIN_MODELS})
                    for sc in MAIN_SCENARIOS}
            out += [f"### {SPLIT_NAMES[split].capitalize()}, {name}", "",
                    "| model | params | " + " | ".join(f"`{s}`" for s in MAIN_SCENARIOS)
                    + " |", "|---|---:|" + "---|" * len(MAIN_SCENARIOS)]
            for m in MAIN_MODELS:
                params = _params({r.params for sc in MAIN_SCENARIOS
                                  for r in rat.get((sc, m, split), [])})
                cells = [cell(vals[(m, sc)], nseeds, bold=best[sc] == m)
                         for sc in MAIN_SCENARIOS]
                out.append(f"| `{m}` | {params} | " + " | ".join(cells) + " |")
            out.append("")
    return out


def regime_columns(reg: dict) -> list[tuple[str, str]]:
    """The map's datasets in the JSON, in the code's order, with what the input shows
    (datasets of the symmetry-discovery runs only are left out); unknown keys last."""
    from accuracy.regime import regime_data, regime_scale
    in_json = list(dict.fromkeys(k.split(" | ")[0] for k in reg["ratios"]))
    known = regime_data(regime_scale(reg.get("scale", "cpu")), Path("."))
    cols = [(d.job.key, d.shows) for d in known if d.in_map and d.job.key in in_json]
    skip = {d.job.key for d in known}
    return cols + [(k, "") for k in in_json if k not in skip]


def regime_rows(reg: dict) -> list[str]:
    """The variants in the JSON, in the code's order; unknown labels last."""
    from accuracy.regime import REGIME_VARIANTS
    in_json = list(dict.fromkeys(k.split(" | ", 1)[1] for k in reg["ratios"]))
    order = [lab for lab in dict.fromkeys(v[0] for v in REGIME_VARIANTS) if lab in in_json]
    return order + [lab for lab in in_json if lab not in order]


def regime_section(path: Path = REGIME_JSON) -> list[str]:
    """Conditions and the headline table of the regime map."""
    reg = json.loads(path.read_text())
    seeds = reg.get("seeds", [])
    finished = [r.get("finished", "") for r in reg.get("results", []) if r.get("finished")]
    date = reg.get("date") or (max(finished)[:10] if finished else "date not recorded")
    machine = f"on {reg['machine']}" if reg.get("machine") else \
        "machine: in the report, not recorded in the JSON"
    from accuracy.regime import SHOWS_TEXT
    cols, rows = regime_columns(reg), regime_rows(reg)
    rat = reg["ratios"]

    def vals(key: str, lab: str) -> list[float]:
        return rat.get(f"{key} | {lab}", {}).get("test-domain", {}).get("all", [])

    best = {k: _best({lab: mean_std(vals(k, lab))[0] for lab in rows}) for k, _ in cols}
    out = [f"Runs finished by {date[:10]} ({machine}): {len(reg.get('results', []))} runs, "
           f"seeds {', '.join(map(str, seeds))}, "
           f"{reg.get('train_minutes_summed', math.nan):.0f} min of training and scoring "
           f"summed over runs; settings in the report "
           f"([`regime_cpu.md`](../{_rel(path.parent)}/regime_cpu.md)). Cells: test-domain "
           f"RMSE over all fields over persistence's, mean ± std over the seeds each row "
           f"ran; bold: best of the column."
           + (" `~magnitudes`: the dataset with every wall of some magnitudes held out "
              "(unseen forces), where the others hold out single runs whose magnitude "
              "other walls show in training." if any("~magnitudes" in k for k, _ in cols)
              else ""), "",
           "| variant | params | " + " | ".join((f"`{k}` ({SHOWS_TEXT.get(s, s)})" if s else f"`{k}`") for k, s in cols) + " |",
           "|---|---:|" + "---|" * len(cols)]
    for lab in rows:
        params = _params({reg.get("params", {}).get(k, {}).get(lab, 0) for k, _ in cols})
        cells = [cell(vals(k, lab), len(seeds), bold=best[k] == lab) for k, _ in cols]
        out.append(f"| {lab} | {params} | " + " | ".join(cells) + " |")
    return out + [""]


def page(sources=MAIN_SOURCES, regime_json: Path = REGIME_JSON) -> str:
    """The whole of docs/results.md."""
    names = ", ".join([*(_rel(f) for f, _ in sources), _rel(regime_json),
                       *(_rel(f) for f in (FRONTIER_JSON, STRIDE_JSON) if f.is_file())])
    conditions, nseeds = main_conditions(sources)
    rat = ratios(sources)
    lines = [f"generated by benchmarks/results_page.py from {names}; do not edit", "",
             "# Current results", "",
             "The benchmarks' current results, and only those: what each study measures "
             "and what it shows is in [accuracy.md](accuracy.md), every results folder "
             "(current or archived) in "
             "[`benchmarks/results/README.md`](../benchmarks/results/README.md), older "
             "runs in [history.md](history.md).", "",
             "## Main study: five models on four datasets", "", conditions, "",
             *main_tables(rat, nseeds),
             beats_persistence(rat), "",
             "## Regime map: when relaxation pays", "", *regime_section(regime_json),
             "## Speed", "", *speed_section(), ""]
    return "\n".join(lines)


def speed_section(frontier: Path = FRONTIER_JSON, stride: Path = STRIDE_JSON) -> list[str]:
    """The speed-accuracy frontier's and the stride study's reports, a level down, from
    their JSON (when they exist)."""
    from frontier_report import markdown as frontier_md
    from stride_report import markdown as stride_md
    out = []
    for path, md in ((frontier, frontier_md), (stride, stride_md)):
        if path.is_file():
            text = md(json.loads(path.read_text())).replace("\n## ", "\n#### ")
            out += ["### " + text.lstrip("# "), f"(from [`{_rel(path)}`](../{_rel(path)}))",
                    ""]
    return out or ["No speed benchmark with trained models has been run; the speed tables "
                   "of randomly initialised models (2026-11-23) are "
                   "[`benchmarks/results/speed.md`](../benchmarks/results/speed.md)."]


def main(argv: list[str] | None = None) -> None:
    """Write the page to ``--out`` (default docs/results.md; ``-``: stdout)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(PAGE))
    args = p.parse_args(argv)
    text = page()
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
