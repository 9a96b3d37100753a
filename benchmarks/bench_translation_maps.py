"""Where does ``relaxed_conv_unet`` learn to break translation symmetry?

Simulates the paper's ``translation`` scenario (buoyancy differs between the left and
right half of the box) at a CPU scale, trains ``relaxed_conv_unet`` and, for reference,
``unet`` at equal parameters with the default recipe, evaluates both against
persistence on test-domain and test-future, and draws the learned position maps
``w_l(x)`` (deviation from their mean over positions) of every layer. On this data the
maps should single out the left/right boundary ``x = L/2``. Writes
``benchmarks/results/translation_maps.md`` and ``translation_maps.png``.

    .venv/bin/python benchmarks/bench_translation_maps.py            # ~10 min, 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench_models import machine_name  # also puts the root on sys.path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("unet", "relaxed_conv_unet")


def simulate_data(work: Path, res: int, steps: int) -> Path:
    """The ``translation`` preset at ``res`` (reused when the spec is unchanged)."""
    import simulate
    spec = simulate.preset("translation", resolution=res, steps=steps, save_every=2)
    path = work / "translation.nc"
    if not simulate.holds_spec(path, spec):
        simulate.generate(spec, path, progress=False, overwrite=True)
    return path


def train_models(data: Path, work: Path, params: int, epochs: int, steps: int) -> list[Path]:
    import surrogate
    import train
    out = []
    for name in MODELS:
        extra = {"grid": (32, 32)} if name == "relaxed_conv_unet" else {}
        hidden = surrogate.width_for_params(name, params, T_in=8, depth=3, **extra)
        cfg = train.TrainConfig(
            data=[str(data)], out=str(work / "runs" / name), model=name,
            model_config={"hidden": hidden, "depth": 3}, T_in=8, K=3, batch_size=16,
            epochs=epochs, lr=2e-3, max_steps_per_epoch=steps, patience=None,
            overwrite=True, seed=0, device="cpu", progress=False,
            split=train.SplitConfig(test_steps=20, valid_stride=2))
        out.append(train.fit(cfg))
    return out


def position_maps(checkpoint: Path, path: Path) -> list[tuple[str, float, int]]:
    """Draw every layer's deviation map; ``(layer, relative deviation, column of the
    largest column-mean deviation)`` per layer."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import surrogate
    from evaluate import relaxation_summary
    layers = [l for l in relaxation_summary(surrogate.load(checkpoint))
              if l.kind == "translation"]
    ncol = 4
    nrow = -(-len(layers) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3 * nrow), squeeze=False)
    rows = []
    for ax, l in zip(axes.flat, layers):
        p = np.asarray(l.profile)
        im = ax.imshow(p, origin="lower", cmap="magma")
        ax.axvline(p.shape[1] / 2 - 0.5, color="c", lw=0.8, ls="--")
        ax.set_title(f"{l.name}\nrel. dev. {l.relative_deviation:.3g}", fontsize=7)
        ax.set(xticks=[], yticks=[])
        fig.colorbar(im, ax=ax, shrink=0.8)
        col = p.mean(axis=0)
        rows.append((l.name, l.relative_deviation, int(np.argmax(col)), p.shape[1]))
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    fig.suptitle("relaxed_conv_unet on `translation`: |w(x) - mean_x w| per layer "
                 "(dashed: the left/right buoyancy boundary)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "work" / "translation"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--steps", type=int, default=160, help="solver steps (dt 0.5)")
    p.add_argument("--params", type=int, default=60_000)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--steps-per-epoch", dest="steps_per_epoch", type=int, default=24)
    args = p.parse_args(argv)
    import evaluate
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = simulate_data(work, 32, args.steps)
    t_sim = time.time() - t0
    ckpts = train_models(data, work, args.params, args.epochs, args.steps_per_epoch)
    t_train = time.time() - t0 - t_sim
    rep = evaluate.run(ckpts, data, splits=("test-future", "test-domain"), steps=20,
                       out=work / "report", labels=list(MODELS), device="cpu",
                       figures=False, overwrite=True)
    summary = json.loads((rep / "summary.json").read_text())
    rows = position_maps(ckpts[1], out / "translation_maps.png")
    lines = ["## relaxed_conv_unet on `translation` (`benchmarks/bench_translation_maps.py`)",
             "", f"- date {time.strftime('%Y-%m-%d')}, {machine_name(torch.device('cpu'))}; 32x32, "
             f"{args.steps} solver steps saved every 2, ~{args.params:,} parameters, "
             f"{args.epochs} x {args.steps_per_epoch} optimiser steps, T_in 8, one seed",
             f"- simulate {t_sim:.0f} s, train {t_train:.0f} s", "",
             "| model | test-future vs persistence | test-domain vs persistence |",
             "|---|---|---|"]
    for m in summary["models"]:
        if m.get("baseline"):
            continue
        r = m["vs_persistence"]
        lines.append(f"| {m['label']} | " + " | ".join(
            f"{r[s]['rmse_velocity']:.2f}x / {r[s]['rmse']:.2f}x"
            for s in ("test-future", "test-domain")) + " |")
    lines += ["", "(velocity / all-fields RMSE ratio; < 1 beats persistence)", "",
              "Learned position maps (![maps](translation_maps.png)): per layer the "
              "relative deviation of w from its mean over positions, and the column with "
              "the largest mean deviation (the buoyancy boundary lies between columns "
              "W/2-1 and W/2):", "", "| layer | relative deviation | peak column / width |",
              "|---|---:|---|"]
    lines += [f"| {n} | {d:.3g} | {c} / {w} |" for n, d, c, w in rows]
    text = "\n".join(lines) + "\n"
    (out / "translation_maps.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
