"""The regime map: plain, strict and relaxed group convs (and the steerable pair) on the
symmetric twin, on breaking hidden from the probe's statistics (``settling``: a fixed
settling direction, which a strict network still reads from one frame) and on shown
breaking (``breaking_sweep``: the buoyancy magnitude one frame shows), at equal
parameters and at the strict width, several seeds; the observability probe and the
symmetry each trained model keeps beside every table.

    python benchmarks/bench_regime.py --scale cpu            # ~1.5 h on 2 CPU cores
    python benchmarks/bench_regime.py --scale cpu --dry-run  # the plan only
    python benchmarks/bench_regime.py --scale smoke          # a pipeline check
    python benchmarks/bench_regime.py --epochs 30 --only "settling@0.6/strict gconv D4" \
        --only "settling@0.6/relaxed gconv D4 @ strict width" --work W --out O
                                                             # part of the map, 2x budget

Datasets and runs are cached under ``--work`` (default ``benchmarks/work/regime-<scale>``;
re-running continues an interrupted map). Writes ``regime_<scale>.md``, ``.json`` and
``.png`` to ``--out`` (default ``benchmarks/results/regime``; smoke, ``--epochs`` and
``--only``: under the work folder, so a partial map never replaces the map's report).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # accuracy adds the root itself

from accuracy import ROOT, log, now, write_json, write_text  # noqa: E402
from accuracy import regime as R  # noqa: E402
from accuracy import regime_report as RR  # noqa: E402
from accuracy.report import machine, versions  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=["cpu", "smoke"], default="cpu")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: scale's)")
    ap.add_argument("--jobs", type=int, default=None, help="parallel training processes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--work", type=Path, default=None, help="datasets and runs (the cache)")
    ap.add_argument("--out", type=Path, default=None, help="results folder")
    ap.add_argument("--epochs", type=int, default=None,
                    help="training epochs (default: the scale's; another number gets its own "
                         "default --work)")
    ap.add_argument("--only", action="append", default=None, metavar="DATA[/LABEL]",
                    help="run only this dataset (or one labelled run of it); repeatable")
    ap.add_argument("--dry-run", action="store_true", help="print the plan only")
    return ap.parse_args(argv)


def paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """(work, out): the cache and the results folder. Another budget never shares the
    map's cache (a changed run key would retrain its runs in place), and a partial map
    (smoke, another budget, ``--only``) never replaces the map's report."""
    work = (args.work or R.default_work(args.scale, args.epochs)).resolve()
    partial = args.scale == "smoke" or args.epochs is not None or bool(args.only)
    out = args.out or (work / "results" if partial
                       else ROOT / "benchmarks" / "results" / "regime")
    return work, out.resolve()


def discovery(plan, results: list[dict]) -> dict[str, dict]:
    """The symmetry each finished run keeps (``data / label / seed N`` -> the verdict as a
    dict), judged on D4 on its test-domain histories."""
    from evaluate.discovery import checkpoint_symmetry
    task_of = {t.key(): t for t in plan.tasks}
    out = {}
    for r in sorted((r for r in results if "error" not in r),
                    key=lambda r: (r["data_key"], r["label"], r["seed"])):
        t = task_of[r["key"]]
        out[f"{t.data_key} / {t.label} / seed {t.seed}"] = checkpoint_symmetry(
            str(Path(t.out) / "best.pt"), t.data_path).to_dict()
    return out


def _header(scale_name: str, scale: dict, seeds: list[int], results: list[dict],
            minutes: float, train_min: float) -> list[str]:
    """The report's title and paragraph of conditions (and the failed runs, if any)."""
    tr = scale["train"]
    header = [f"# Regime map ({scale_name} scale)", "",
              f"Report made {now()} on {machine(scale['device'])}: {len(results)} "
              f"runs (seeds {seeds}; discovery runs seed 0), {train_min:.0f} min of "
              f"training and scoring summed over runs ({scale['jobs']} at a time), this "
              f"invocation {minutes:.1f} min; {versions()}. "
              f"Training: T_in {tr['T_in']}, K {tr['K']}, {tr['epochs']} x "
              f"{tr['max_steps_per_epoch']} steps, batch {tr['batch_size']}, lr {tr['lr']}, "
              f"~{scale['model']['params']:,} parameters at equal parameters; scored on "
              f"{scale['eval']['steps']}-step rollouts, <= {scale['eval']['max_windows']} "
              "windows per split. Cells: RMSE over persistence's on the same windows, "
              "mean ± std over seeds (lower is better; bold: best of the column). "
              "'Beyond the spread': every seed better than every seed of the other."]
    failed = [r for r in results if "error" in r]
    if failed:
        header.append(f"\n{len(failed)} runs FAILED: " + "; ".join(
            f"{r['data_key']} {r['label']} seed {r['seed']}: {r['error']}" for r in failed))
    return header


def _discovery_section(found: dict) -> list[str]:
    """The table of the symmetry each trained model keeps, and its verdicts."""
    if not found:
        return []
    tol = next(iter(found.values()))
    md = ["## Symmetry each model keeps", "",
          "Functional equivariance error of the predicted step per D4 element, "
          "||f(gx) - g f(x)|| / ||f(x) - x_T|| on 16 test-domain histories "
          "(normalised fields); an element is kept when its error is at most "
          f"max({tol['atol']:g}, {tol['rtol']:g} x the largest, floor), the floor "
          "being the model's own one-step error relative to its step on the same "
          "histories (an element broken by less cannot be told from error). "
          "Elements: r, r2, r3 "
          "quarter / half / three-quarter turns; s mirror x -> -x; r2s mirror "
          "y -> -y; rs, r3s the diagonal mirrors.", ""]
    md += RR.discovery_table(found) + [""]
    return md + [f"- {k}: {v['verdict']}" for k, v in found.items()]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    scale = R.regime_scale(args.scale)
    if args.epochs is not None:
        if args.epochs < 1:
            sys.exit(f"error: --epochs must be at least 1, got {args.epochs}")
        scale["train"]["epochs"] = args.epochs
    seeds = list(range(args.seeds if args.seeds is not None else scale["seeds"]))
    work, out_dir = paths(args)
    try:
        plan, datasets = R.build_plan(scale, seeds, work, scale["device"], args.threads,
                                      args.only)
    except ValueError as e:
        sys.exit(f"error: {e}")
    R.log_plan(plan, datasets, scale)
    if args.dry_run:
        return 0
    from accuracy.run import execute
    t0 = time.perf_counter()
    outcome = execute(plan, args.jobs or scale["jobs"], scale["device"], args.threads)
    base = R.persistence_by_data(plan, outcome.results, scale["eval"])
    rat = R.ratios(outcome.results, base)
    probe = R.probe(datasets)
    found = discovery(plan, outcome.results)
    params = {}
    for r in outcome.results:
        if "error" not in r:
            params.setdefault(r["data_key"], {})[r["label"]] = r["params"]
    minutes = (time.perf_counter() - t0) / 60
    train_min = sum(r.get("seconds", 0) for r in outcome.results) / 60
    header = _header(args.scale, scale, seeds, outcome.results, minutes, train_min)
    md = RR.markdown(datasets, rat, probe, params, header) + _discovery_section(found)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / f"regime_{args.scale}.md", "\n".join(md) + "\n")
    write_json(out_dir / f"regime_{args.scale}.json",
                 {"scale": args.scale, "date": now(), "machine": machine(scale["device"]),
                  "seeds": seeds, "minutes": minutes,
                  "train_minutes_summed": train_min,
                  "ratios": R.to_json(rat), "persistence": base, "probe": probe,
                  "discovery": found, "params": params, "results": outcome.results})
    RR.figure(datasets, rat, out_dir / f"regime_{args.scale}.png")
    log(f"wrote {out_dir / f'regime_{args.scale}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
