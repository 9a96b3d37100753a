"""Where the regime map's test-domain error lies: per inflow wall, each trained model's
RMSE over persistence's on the same windows (mean ± std over seeds), read from the map's
cache. On ``settling`` the walls differ in how the plume meets the settling (bottom:
against it, top: with it, sides: across), so this shows whether a strict model, which
cannot represent the settling direction, loses where a relaxed one does not.

    python benchmarks/regime_walls.py                         # settling 0.6, unseen magnitudes
    python benchmarks/regime_walls.py --data settling@0.3 --labels plain "strict gconv D4"

Every test-domain window of the finished runs is scored (not the map's 32), with the
map's rollout length. Writes ``regime_walls.md`` and ``.json`` to ``--out`` (default
``benchmarks/results/regime``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # accuracy adds the root itself

from accuracy import ROOT, log, now, write_json, write_text  # noqa: E402
from accuracy import regime as R  # noqa: E402
from accuracy.report import machine, versions  # noqa: E402
from accuracy.tables import mean_std  # noqa: E402

WALL_NAMES = ("bottom", "right", "top", "left")
LABELS = ("plain", "strict gconv D4", "relaxed gconv D4 @ strict width", "strict steer D4",
          "relaxed steer D4 @ strict width")


def per_wall(model: dict[int, dict], base: dict[int, dict], walls) -> dict[int, float]:
    """``wall -> model RMSE / persistence RMSE`` over that wall's windows (each side the
    window-weighted mean of the per-simulation RMSEs ``by_simulation`` gives)."""
    num: dict[int, float] = {}
    den: dict[int, float] = {}
    for sim, m in model.items():
        w, n = int(walls[sim]), m["n_windows"]
        num[w] = num.get(w, 0.0) + n * m["rmse"]
        den[w] = den.get(w, 0.0) + n * base[sim]["rmse"]
    return {w: num[w] / den[w] for w in sorted(num)}


def score_run(checkpoint: str, data_path: str, steps: int) -> dict[int, float]:
    """Test-domain per-wall ratios of one trained model."""
    import evaluate
    import surrogate
    from evaluate.baselines import Persistence
    from surrogate.symmetry import FieldLayout

    model = surrogate.load(checkpoint, device="cpu")
    ds = evaluate.open_data([data_path])
    try:
        w = evaluate.build_windows(model.metadata, "test-domain", ds, model.T_in, steps)
        r = evaluate.evaluate_split(model, ds, w, keep=0)
        layout = FieldLayout.of(model.metadata.get("layout"))
        p = evaluate.evaluate_split(Persistence(layout, model.T_in), ds, w, keep=0)
        return per_wall(r.by_simulation(("rmse",)), p.by_simulation(("rmse",)),
                        ds["wall"].values)
    finally:
        ds.close()


def markdown(data: str, table: dict[str, dict[int, list[float]]], header: str) -> list[str]:
    walls = sorted({w for v in table.values() for w in v})
    L = [f"# Test-domain error per inflow wall: {data}", "", header, "",
         "| model | " + " | ".join(f"{WALL_NAMES[w]} wall" for w in walls) + " |",
         "|---|" + "---|" * len(walls)]
    for lab, v in table.items():
        cells = []
        for w in walls:
            m, s, _ = mean_std(v.get(w, []))
            cells.append(f"{m:.3f} ± {s:.3f}" if v.get(w) else "–")
        L.append(f"| {lab} | " + " | ".join(cells) + " |")
    return L


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="settling@0.6~magnitudes", help="a dataset of the map")
    ap.add_argument("--labels", nargs="+", default=list(LABELS), help="the map's run labels")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=R.default_work("cpu"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "regime")
    args = ap.parse_args(argv)
    scale = R.regime_scale("cpu")
    try:
        plan, _ = R.build_plan(scale, list(range(args.seeds)), args.work.resolve(), "cpu", 1,
                               [f"{args.data}/{lab}" for lab in args.labels])
    except ValueError as e:
        sys.exit(f"error: {e}")
    table: dict[str, dict[int, list[float]]] = {lab: {} for lab in args.labels}
    for t in sorted(plan.tasks, key=lambda t: (args.labels.index(t.label), t.seed)):
        ck, res = Path(t.out) / "best.pt", Path(t.out) / "result.json"
        if not res.is_file() or json.loads(res.read_text()).get("key") not in (
                t.key(), t.legacy_key()):
            log(f"skipped {t.label} seed {t.seed}: no finished run with the map's "
                f"settings in {args.work}")
            continue
        ratios = score_run(str(ck), t.data_path, scale["eval"]["steps"])
        log(f"{t.label} seed {t.seed}: " + ", ".join(f"{WALL_NAMES[w]} {v:.3f}"
                                                    for w, v in ratios.items()))
        for w, v in ratios.items():
            table[t.label].setdefault(w, []).append(v)
    header = (f"Made {now()} on {machine('cpu')} ({versions()}) from the regime map's runs: "
              f"every test-domain window, {scale['eval']['steps']}-step rollouts, RMSE over "
              "persistence's on the same windows, all fields, mean ± std over seeds. Walls: "
              "where the plume's inflow sits (its buoyancy points away from it); the smoke "
              "settles towards the bottom wall.")
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "regime_walls.md", "\n".join(markdown(args.data, table, header)) + "\n")
    write_json(args.out / "regime_walls.json", {"data": args.data, "date": now(),
               "machine": machine("cpu"), "walls": list(WALL_NAMES),
               "ratios": {lab: {WALL_NAMES[w]: v for w, v in d.items()}
                          for lab, d in table.items()}})
    log(f"wrote {args.out / 'regime_walls.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
