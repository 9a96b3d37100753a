"""relaxflow's main job (``make demo``): simulate -> train -> evaluate -> report.

On 2 CPU cores this takes several minutes: it generates a symmetry-broken ``rotation``
dataset with PhiFlow (32 plumes: 8 buoyancy magnitudes per wall; the training plumes of
every other magnitude are recorded after 60 solver steps of warm-up, so that the later
flow regime that test-future asks about is in the training data), trains a plain U-Net,
a strictly C4-equivariant group-conv U-Net and a relaxed group-conv U-Net at equal
parameter count with the ``cpu`` training preset (``train/presets/cpu.toml``:
normalised-difference targets, a persistence-initialised head, training noise, warm-up +
cosine schedule, density weighed 2x in the loss, the loss unrolled over 6 steps), evaluates
20-step rollouts on test-future and test-domain against persistence, writes a
report folder, and measures the best model's correlation time on test-domain over
40-step rollouts (``demo_output/report_40_steps``). Copy it and change the knobs at the
top for your own study.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import simulate
import surrogate
import train
import evaluate

MODELS = ["unet", "gconv_unet", "relaxed_gconv_unet"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="demo_output", help="folder for data, runs and report")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--magnitudes", type=int, default=8, help="buoyancy magnitudes per wall")
    p.add_argument("--base-buoyancy", dest="base_buoyancy", type=float, default=0.00375,
                   help="buoyancy step between magnitudes (the strongest plume gets "
                        "4 x magnitudes x this)")
    p.add_argument("--steps", type=int, default=160, help="solver steps per simulation")
    p.add_argument("--late-start", dest="late_start", type=int, default=60,
                   help="warm-up solver steps of the late-recorded training plumes (odd "
                        "magnitude index), so the train split holds the later regime "
                        "test-future asks about; 0: every plume from rest (docs/accuracy.md)")
    p.add_argument("--save-every", type=int, default=2)
    p.add_argument("--params", type=int, default=60_000, help="parameters per model")
    p.add_argument("--preset", default="cpu",
                   help="training recipe, train/presets/NAME.toml (cpu: the 2-core "
                        "recipe of the demo and the benchmarks)")
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--rollout", type=int, default=20, help="test rollout steps")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    data = simulate_data(args, out / "rotation.nc")          # 1. simulate
    checkpoints = train_models(args, data, out / "runs")      # 2. train

    # 3. evaluate rollouts on unseen times and unseen simulations, write the report
    print(f"[3/3] evaluating {args.rollout}-step rollouts")
    report = evaluate.run(checkpoints, [data], splits=("test-future", "test-domain"),
                          steps=args.rollout, out=out / "report", labels=MODELS, device="cpu",
                          quantity=("density", "speed"),
                          plot_steps=[s for s in (1, 5, 10, 20) if s <= args.rollout],
                          overwrite=True)
    print(f"\nreport: {report.resolve()}  ({time.time() - t_start:.0f} s in all)\n")
    summary = (report / "summary.md").read_text()
    headline = summary.split("\n## ")[1]  # the RMSE table, models x (test-future, test-domain)
    print("## " + headline.strip() + "\n")
    results = json.loads((report / "summary.json").read_text())
    print(verdict(results))
    print(correlation_horizon(results, checkpoints, data, out, 2 * args.rollout))
    print("\nFull report: " + str(report / "summary.md"))
    return 0


def simulate_data(args: argparse.Namespace, data: Path) -> Path:
    """A ``rotation`` dataset whose buoyancy magnitude differs per wall (reused when
    ``data`` already holds this spec)."""
    spec = simulate.preset("rotation", resolution=args.resolution, n_magnitudes=args.magnitudes,
                           base_buoyancy=args.base_buoyancy, steps=args.steps,
                           save_every=args.save_every, late_start=args.late_start)
    reuse = simulate.holds_spec(data, spec)
    if data.exists() and not reuse:
        print(f"[1/3] {data} was made with other settings: simulating anew")
        data.unlink()
    if reuse:
        print(f"[1/3] reusing {data}")
    else:
        late = sum(1 for sim in spec.sims if sim.warmup_steps)
        print(f"[1/3] simulating {len(spec.sims)} plumes, {args.resolution}x{args.resolution}, "
              f"{args.steps} steps" + (f" ({late} training plumes recorded after "
                                       f"{args.late_start} warm-up steps)" if late else ""))
        simulate.generate(spec, data, workers=2)
    ds = simulate.open_dataset(data)
    print(f"      data equivariance error (C4): {simulate.data_equivariance_error(ds):.3f}")
    return data


def train_models(args: argparse.Namespace, data: Path, runs: Path) -> list[Path]:
    """The three models at equal parameter count, with one named recipe; their best
    checkpoints."""
    base = train.load_preset(args.preset)
    print(f"[2/3] training {', '.join(MODELS)} (~{args.params:,} parameters each, "
          f"preset {args.preset!r})")
    depth = 3
    checkpoints = []
    for name in MODELS:
        hidden = surrogate.width_for_params(name, args.params, T_in=base.T_in, depth=depth)
        cfg = train.load_preset(
            args.preset, data=[str(data)], out=str(runs / name), model=name,
            model_config={"hidden": hidden, "depth": depth},
            epochs=args.epochs or base.epochs, overwrite=True, seed=0,
            split={"test_steps": args.rollout})
        checkpoints.append(train.fit(cfg))
    return checkpoints


def correlation_horizon(summary: dict, checkpoints: list, data: Path, out: Path,
                        steps: int) -> str:
    """The best model's (lowest test-domain velocity ratio) correlation time on
    test-domain over ``steps``-step rollouts: a ``--rollout``-step report can only say
    ">= --rollout" for windows that never decorrelate; this one measures past it."""
    models = [m for m in summary["models"] if not m.get("baseline")]
    ratio = [m["vs_persistence"].get("test-domain", {}).get("rmse_velocity") for m in models]
    scored = [k for k in range(len(models)) if ratio[k] is not None]
    if not scored:
        return "Correlation time over longer rollouts: not measured (no test-domain ratio)"
    i = min(scored, key=lambda k: ratio[k])
    try:
        longer = evaluate.run([checkpoints[i]], [data], splits=("test-domain",), steps=steps,
                              out=out / f"report_{steps}_steps", labels=[models[i]["label"]],
                              device="cpu", figures=False, gif=False, overwrite=True)
    except evaluate.EvaluationError as e:  # e.g. records too short for `steps` more frames
        return f"Correlation time over {steps}-step rollouts: not measured ({e})"
    r = json.loads((longer / "summary.json").read_text())["models"][0]["splits"]["test-domain"]
    return (f"Correlation time of the best model ({models[i]['label']}) on test-domain over "
            f"{steps}-step rollouts: {r['corr_time_steps']:.1f} steps "
            f"({100 * r['corr_time_censored']:.0f}% of {r['n_windows']} windows never drop "
            f"below the threshold; {longer / 'summary.md'})")


def verdict(summary: dict) -> str:
    """One line per model: where it beats persistence (velocity RMSE ratio < 1)."""
    lines = ["Against persistence (velocity RMSE ratio; < 1 beats \"nothing changes\"):"]
    for m in summary["models"]:
        if m.get("baseline"):
            continue
        parts = []
        for split, r in m["vs_persistence"].items():
            ratio = r.get("rmse_velocity", r.get("rmse"))
            parts.append(f"{split} {ratio:.2f}x ({'beats' if ratio < 1 else 'LOSES TO'} "
                         "persistence)")
        lines.append(f"  {m['label']}: " + ", ".join(parts))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
