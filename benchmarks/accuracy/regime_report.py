"""The regime map's report: one table per dataset (ratios to persistence, mean ± std over
seeds), the probe beside it, the relaxed-vs-strict verdicts, and the figure."""

from __future__ import annotations

import math
from pathlib import Path

from .plan import SPLITS
from .regime import METRICS, REGIME_VARIANTS, SHOWS_TEXT, RegimeData, separated
from .tables import mean_std as _mean_std_n


def mean_std(v: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds."""
    return _mean_std_n(v)[:2]

RELAXED = "relaxed gconv @ strict width"
#: the D4 pair judged the same way (relaxed at the strict D4 model's width)
RELAXED_D4, STRICT_D4 = "relaxed gconv D4 @ strict width", "strict gconv D4"
#: and the steerable D4 pair
RELAXED_STEER_D4, STRICT_STEER_D4 = "relaxed steer D4 @ strict width", "strict steer D4"


def _cell(v: list[float] | None, bold: bool = False) -> str:
    if not v:
        return "–"
    m, s = mean_std(v)
    txt = f"{m:.3f} ± {s:.3f}"
    return f"**{txt}**" if bold else txt


def _labels(rat: dict, key: str) -> list[str]:
    return list(dict.fromkeys(lab for lab, *_ in REGIME_VARIANTS if (key, lab) in rat))


def dataset_table(rat: dict, key: str, params: dict[str, int]) -> list[str]:
    """Rows: models; columns: test-domain and test-future x all / velocity / density."""
    cols = [(s, c) for s in ("test-domain", "test-future") for c in METRICS]
    labs = _labels(rat, key)
    best = {}
    for s, c in cols:
        means = [(mean_std(rat[(key, lab)].get(s, {}).get(c, []))[0], lab) for lab in labs]
        finite = [m for m in means if not math.isnan(m[0])]
        best[(s, c)] = min(finite)[1] if finite else None
    head = ["model", "params", *[f"{s} {c}" for s, c in cols]]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lab in labs:
        cells = [_cell(rat[(key, lab)].get(s, {}).get(c), best[(s, c)] == lab) for s, c in cols]
        p = params.get(lab)
        rows.append("| " + " | ".join([lab, f"{p:,}" if p else "–", *cells]) + " |")
    return rows


def verdict(rat: dict, key: str, relaxed: str = RELAXED, strict: str = "strict gconv"
            ) -> list[str]:
    """Whether ``relaxed`` beats ``strict`` and plain on test-domain (all fields, density)
    beyond the seeds' spread (every seed better than every seed of the other), and
    whether it is worse than ``strict`` beyond the spread in velocity or on test-future."""
    r = rat.get((key, relaxed))
    if not r:
        return []
    out = []
    for other in (strict, "plain"):
        o = rat.get((key, other))
        if not o:
            continue
        bits = []
        for c in ("all", "density"):
            a, b = r.get("test-domain", {}).get(c, []), o.get("test-domain", {}).get(c, [])
            d = mean_std(a)[0] - mean_std(b)[0]
            tag = "beyond the spread" if separated(a, b) else (
                "worse beyond the spread" if separated(b, a) else "within the spread")
            bits.append(f"{c} {d:+.3f} ({tag})")
        out.append(f"- {relaxed} vs {other}, test-domain: " + "; ".join(bits))
    s = rat.get((key, strict))
    if s:
        worse = [f"{sp} {c}" for sp in SPLITS for c in ("all", "velocity", "density")
                 if separated(s.get(sp, {}).get(c, []), r.get(sp, {}).get(c, []))]
        out.append(f"- {relaxed} worse than {'strict' if strict == 'strict gconv' else strict}"
                   " beyond the spread in: " + (", ".join(worse) if worse else "nothing"))
    return out


def best_of_each(rat: dict, key: str) -> list[str]:
    """The best relaxed model against the best strict model (of any group), test-domain
    all fields: the comparison a user choosing between them makes."""
    def best(prefix: str) -> tuple[float, str] | None:
        means = [(mean_std(v)[0], lab) for lab in _labels(rat, key) if lab.startswith(prefix)
                 and (v := rat[(key, lab)].get("test-domain", {}).get("all"))]
        return min(means) if means else None
    r, s = best("relaxed"), best("strict")
    if r is None or s is None:
        return []
    a, b = (rat[(key, lab)]["test-domain"]["all"] for lab in (r[1], s[1]))
    tag = "better beyond the spread" if separated(a, b) else (
        "worse beyond the spread" if separated(b, a) else "within the spread")
    return [f"- best relaxed ({r[1]}, {r[0]:.3f}) vs best strict ({s[1]}, {s[0]:.3f}), "
            f"test-domain all fields: {tag}"]


def markdown(datasets: list[RegimeData], rat: dict, probe: dict, params: dict,
             header: list[str]) -> list[str]:
    """The whole report."""
    L = [*header, ""]
    for d in datasets:
        k = d.job.key
        pr = probe.get(k, {})
        ee = pr.get("data_equivariance_error")
        held = {"magnitudes": "; held out: every wall of unseen magnitudes",
                "patterns": "; held out: every turn of unseen stirred starts"
                }.get(d.held_out, "")
        title = (f"## {k} (strength {d.strength:g}; {SHOWS_TEXT[d.shows]}{held})"
                 if d.in_map else
                 f"## {k} (symmetry-discovery runs only; {SHOWS_TEXT[d.shows]})")
        L += [title, "",
              f"- Observability: {pr.get('line', '–')}",
              f"- Data equivariance error: {'–' if ee is None else f'{ee:.4f}'}"
              + (f" (density {eed:.4f})"
                 if (eed := pr.get("data_equivariance_error_density")) is not None else ""),
              ""]
        L += dataset_table(rat, k, params.get(k, {})) + [""]
        L += (verdict(rat, k) + verdict(rat, k, RELAXED_D4, STRICT_D4)
              + verdict(rat, k, RELAXED_STEER_D4, STRICT_STEER_D4) + best_of_each(rat, k)
              + [""])
    return L


def model_colors(rat: dict, cycle: list[str]) -> dict[str, str]:
    """One colour per model in the map's order, the same in every column (a column may
    lack some models)."""
    every = dict.fromkeys(lab for lab, *_ in REGIME_VARIANTS if any(k[1] == lab for k in rat))
    return {lab: cycle[n % len(cycle)] for n, lab in enumerate(every)}


def figure(datasets: list[RegimeData], rat: dict, path: Path) -> None:
    """Small multiples: rows all fields / velocity / density, columns the datasets; per
    model a bar (test-domain ratio to persistence, mean over seeds) with its seeds as
    dots; the dashed line is persistence."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = [d for d in datasets if d.in_map and any(k[0] == d.job.key for k in rat)]
    if not cols:
        return
    fig, axes = plt.subplots(3, len(cols), figsize=(3.2 * len(cols), 7.5), squeeze=False,
                             sharey="row")
    color = model_colors(rat, plt.rcParams["axes.prop_cycle"].by_key()["color"])
    every = list(color)
    for j, d in enumerate(cols):
        labs = _labels(rat, d.job.key)
        for i, c in enumerate(METRICS):
            ax = axes[i][j]
            for x, lab in enumerate(labs):
                v = rat[(d.job.key, lab)].get("test-domain", {}).get(c, [])
                if v:
                    ax.bar(x, mean_std(v)[0], color=color[lab], alpha=0.7)
                    ax.plot([x] * len(v), v, "k.", ms=4)
            ax.axhline(1.0, ls="--", c="gray", lw=0.8)
            ax.set_xticks([])
            if i == 0:
                ax.set_title(f"{d.job.key}\n{SHOWS_TEXT[d.shows]}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"test-domain {c}\n/ persistence")
    from matplotlib.patches import Patch
    fig.legend(handles=[Patch(color=color[lab], alpha=0.7, label=lab) for lab in every],
               loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def discovery_table(found: dict[str, dict]) -> list[str]:
    """Per run: the functional equivariance error of each D4 element (of the predicted
    step, on test-domain inputs) and the verdict."""
    if not found:
        return []
    els = list(next(iter(found.values()))["errors"])
    L = ["| run | " + " | ".join(els) + " | floor | keeps |", "|" + "---|" * (len(els) + 3)]
    for k, v in found.items():
        errs = " | ".join(f"{v['errors'][e]:.3f}" for e in els)
        floor = "–" if v.get("floor") is None else f"{v['floor']:.3f}"
        L.append(f"| {k} | {errs} | {floor} | {v['subgroup_name']} |")
    return L
