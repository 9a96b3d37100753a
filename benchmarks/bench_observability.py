"""Can the input show the cause of the symmetry breaking? The observability probe
(``evaluate.observability``) on every dataset of the accuracy benchmark and of the
regime map, at one scale: R² on held-out runs of the breaking cause from one frame (six
invariant statistics, and the frame through a strict network), from the wall alone and
from the inflow position alone.

    python benchmarks/bench_observability.py --scale cpu   # generates what is not cached

Datasets are generated into (or reused from) the two benchmarks' caches
(``benchmarks/work/<scale>/data`` and ``benchmarks/work/regime-<scale>/data``). Writes
``observability_<scale>.md`` and ``.json`` to ``--out`` (default
``benchmarks/results/observability``). Each dataset's probe is kept beside it and reused
(``accuracy.regime.cached_probe``), so the regime report and this page share one fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # accuracy adds the root itself

from accuracy import ROOT, log, now, write_json, write_text  # noqa: E402
from accuracy import plan as P  # noqa: E402
from accuracy import regime as R  # noqa: E402
from accuracy.report import machine  # noqa: E402


def datasets(scale_name: str) -> list[P.DataJob]:
    """The accuracy benchmark's datasets (main, sweep, inputs) and the regime map's."""
    args = argparse.Namespace(scale=scale_name, params=None, epochs=None, work=None,
                              out=None, studies=["main", "sweep", "inputs"], scenarios=None,
                              models=P.MODELS, seed_list=None, seeds=1, jobs=1, threads=1,
                              device="cpu", dry_run=True, rows=None)
    jobs = P.data_jobs(P.resolve_settings(args))
    regime = R.regime_data(R.regime_scale(scale_name), R.default_work(scale_name))
    # the regime map's own datasets under their own names (its sweep level uses the
    # scale's base buoyancy, the accuracy sweep's the preset's)
    return jobs + [dataclasses.replace(d.job, key=f"regime {d.job.key}") for d in regime
                   if d.job.key not in ("symmetric", "rotation")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=["cpu", "smoke"], default="cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "observability")
    args = ap.parse_args(argv)
    from accuracy.run import generate_data, init_worker
    init_worker(2)
    rows, out = [], {}
    for job in datasets(args.scale):
        generate_data(job, "cpu")
        res = R.cached_probe(job.path, (2, 5))       # reused while the dataset is unchanged
        log(f"{job.key}: {res['line']}")
        out[job.key] = {"params": job.params, **res}
        fr, net = (" / ".join(f"{r[str(f)]:.3f}" for f in (2, 5) if str(f) in r) or "–"
                   for r in (res["frame"], res["invariant"]))
        o = "–" if res["orientation"] is None else f"{res['orientation']:.3f}"
        p = "–" if res["position"] is None else f"{res['position']:.3f}"
        rows.append(f"| `{job.key}` | {res['cause']} | {fr} | {net} | {o} | {p} |")
    args.out.mkdir(parents=True, exist_ok=True)
    md = [f"# Observability of the breaking cause ({args.scale} scale)", "",
          f"Run {now()} on {machine('cpu')}. R² on the held-out runs of a ridge regression "
          "(fitted on the training runs) of each run's breaking cause from six rotation- "
          "and mirror-invariant statistics of one frame (frame 2 / frame 5), of the cause "
          "from that one frame through a strict network (a D4-invariant group-conv net "
          "fitted on the training runs' frames: what a strict model can read), from the "
          "inflow wall alone (one-hot) and from the inflow position alone. 1: read "
          "perfectly; 0: no better than the mean; below 0: worse. `evaluate.observability`.",
          "", "| dataset | cause | one frame, statistics (2 / 5) | one frame, strict "
          "network (2 / 5) | wall alone | position alone |",
          "|---|---|---|---|---|---|", *rows]
    write_text(args.out / f"observability_{args.scale}.md", "\n".join(md) + "\n")
    write_json(args.out / f"observability_{args.scale}.json", out)
    log(f"wrote {args.out / f'observability_{args.scale}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
