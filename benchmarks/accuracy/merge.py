"""One study's runs gathered from several results folders, as ratios to persistence.

A study whose seeds or scenarios ran in separate invocations (their caches not shared)
has one ``accuracy_<scale>.{csv,json}`` pair per folder; :func:`ratios` reads each run's
RMSE over persistence's on the same windows (persistence is the same for every seed: same
data, same windows) from the folders named in a source list, and :func:`table_md` gives
the committed 3-seed table of the current main study
(``benchmarks/results/main_k6_nonneg/table.md``, via ``benchmarks/merge_main.py``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

from . import ROOT

RESULTS = ROOT / "benchmarks" / "results"

#: (folder, scenarios taken from it): the current main study. Seed 0 of rotation,
#: translation and symmetric, their seeds 1-2, and all 3 seeds of ``boundary`` on its
#: late-twin data.
MAIN_SOURCES: tuple[tuple[Path, tuple[str, ...]], ...] = (
    (RESULTS / "main_k6_nonneg_seed0", ("rotation", "translation", "symmetric")),
    (RESULTS / "main_k6_nonneg", ("rotation", "translation", "symmetric")),
    (RESULTS / "boundary_late_twins", ("boundary",)),
)
MAIN_SCENARIOS = ["rotation", "translation", "boundary", "symmetric"]
MAIN_MODELS = ["unet", "gconv_unet", "relaxed_gconv_unet", "steer_unet", "relaxed_steer_unet"]
SPLITS = ["test-future", "test-domain"]


@dataclasses.dataclass(frozen=True)
class Ratio:
    """One run's RMSE over persistence's: velocity (u, v) and all fields; its seed and
    parameter count."""
    velocity: float
    all: float
    seed: int
    params: int = 0


#: (scenario, model, split) -> the runs' ratios, in the order of the sources
Ratios = dict[tuple[str, str, str], list[Ratio]]


def ratios(sources: tuple[tuple[Path, tuple[str, ...]], ...] = MAIN_SOURCES,
           study: str = "main", models: list[str] = MAIN_MODELS,
           scale: str = "cpu") -> Ratios:
    """Every run of ``study`` under its model's own label (no variants, no errors) on the
    scenarios each folder is taken for."""
    out: Ratios = {}
    for folder, scenarios in sources:
        meta = json.loads((folder / f"accuracy_{scale}.json").read_text())
        with open(folder / f"accuracy_{scale}.csv", newline="") as f:
            for r in csv.DictReader(f):
                sc, split = r["data"], r["split"]
                if r["study"] != study or sc not in scenarios or r["model"] not in models \
                        or r["label"] != r["model"] or r["error"]:
                    continue
                pv = meta["persistence_velocity"][sc][split]
                pa = meta["persistence"][sc][split]
                out.setdefault((sc, r["model"], split), []).append(
                    Ratio(float(r["rmse_velocity"]) / pv, float(r["rmse"]) / pa,
                          int(r["seed"]), int(r["params"] or 0)))
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value, nan for none)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    m = sum(values) / n
    return m, (math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0)


def largest(rat: Ratios) -> str:
    """The largest single-run ratio in either metric, with where it was."""
    worst = max((max(r.velocity, r.all), k, r.seed) for k, rs in rat.items() for r in rs)
    (sc, model, split), seed = worst[1], worst[2]
    return (f"Largest single-run ratio (either metric): {worst[0]:.2f} "
            f"({sc}, {model}, {split}, seed {seed})")


def table_md(rat: Ratios, scenarios: list[str] = MAIN_SCENARIOS,
             models: list[str] = MAIN_MODELS, seeds: tuple[int, ...] = (0, 1, 2)) -> str:
    """Mean over ``seeds`` per model and scenario, "velocity/all" for test-future, then
    test-domain, and the largest single-run ratio (``main_k6_nonneg/table.md``). Raises
    ``ValueError`` when a cell does not hold exactly those seeds."""
    lines = ["| model | " + " | ".join(scenarios) + " |",
             "|---|" + "---|" * len(scenarios)]
    for m in models:
        cells = []
        for sc in scenarios:
            parts = []
            for split in SPLITS:
                rs = rat.get((sc, m, split), [])
                if sorted(r.seed for r in rs) != list(seeds):
                    raise ValueError(f"{sc}, {m}, {split}: seeds "
                                     f"{sorted(r.seed for r in rs)}, expected {list(seeds)}")
                v = sum(r.velocity for r in rs) / len(rs)
                a = sum(r.all for r in rs) / len(rs)
                parts.append(f"{v:.2f}/{a:.2f}")
            cells.append(", ".join(parts))
        lines.append(f"| `{m}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + largest(rat) + "\n"
