"""The main study's 3-seed table with the density bound, from runs made in three
invocations (their caches were not shared): seed 0 of rotation/translation/symmetric
(``../main_k6_nonneg_seed0``), seeds 1-2 of them (this folder's ``accuracy_cpu.*``) and
all 3 seeds of ``boundary`` on its late-twin data (``../boundary_late_twins``).

    python benchmarks/results/main_k6_nonneg/merge.py > benchmarks/results/main_k6_nonneg/table.md

Cells: mean over seeds of each run's RMSE over persistence's on the same windows
(persistence is the same for every seed: same data, same windows), velocity / all
fields, test-future then test-domain; the largest single-run ratio is listed below."""

import csv
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = {  # folder -> scenarios taken from it
    HERE.parent / "main_k6_nonneg_seed0": ("rotation", "translation", "symmetric"),
    HERE: ("rotation", "translation", "symmetric"),
    HERE.parent / "boundary_late_twins": ("boundary",),
}
SCENARIOS = ["rotation", "translation", "boundary", "symmetric"]
MODELS = ["unet", "gconv_unet", "relaxed_gconv_unet", "steer_unet", "relaxed_steer_unet"]
SPLITS = ["test-future", "test-domain"]


def ratios() -> dict:
    """(scenario, model, split) -> list of (velocity ratio, all-field ratio, seed)."""
    out: dict = {}
    for folder, scenarios in SOURCES.items():
        meta = json.loads((folder / "accuracy_cpu.json").read_text())
        with open(folder / "accuracy_cpu.csv") as f:
            for r in csv.DictReader(f):
                sc, split = r["data"], r["split"]
                if r["study"] != "main" or sc not in scenarios or r["model"] not in MODELS \
                        or r["label"] != r["model"] or r["error"]:
                    continue
                pv = meta["persistence_velocity"][sc][split]
                pa = meta["persistence"][sc][split]
                out.setdefault((sc, r["model"], split), []).append(
                    (float(r["rmse_velocity"]) / pv, float(r["rmse"]) / pa, int(r["seed"])))
    return out


def main() -> None:
    rat = ratios()
    print("| model | " + " | ".join(SCENARIOS) + " |")
    print("|---|" + "---|" * len(SCENARIOS))
    for m in MODELS:
        cells = []
        for sc in SCENARIOS:
            parts = []
            for split in SPLITS:
                rs = rat.get((sc, m, split), [])
                assert sorted(s for *_, s in rs) == [0, 1, 2], (sc, m, split, rs)
                v = sum(r[0] for r in rs) / len(rs)
                a = sum(r[1] for r in rs) / len(rs)
                parts.append(f"{v:.2f}/{a:.2f}")
            cells.append(", ".join(parts))
        print(f"| `{m}` | " + " | ".join(cells) + " |")
    worst = max(((max(r[0], r[1]), k, r[2]) for k, rs in rat.items() for r in rs))
    print(f"\nLargest single-run ratio (either metric): {worst[0]:.2f} "
          f"({worst[1][0]}, {worst[1][1]}, {worst[1][2]}, seed {worst[2]})")


if __name__ == "__main__":
    main()
