"""The stride study: how far can a surrogate step? One dataset stored every 2 solver steps
is thinned to every 4 and 8; the same models train on each with the same compute (the
``cpu`` preset at ``T_in`` 2, so that the sparsest record still holds its windows) and are
scored over the same physical horizon (``--horizon`` solver steps: 20 frames at stride 2,
10 at 4, 5 at 8) against persistence on the same windows. Speed: frames/s through
``Surrogate.rollout`` times the stride (solver steps advanced per second), against the
simulator's best configuration from ``bench_frontier.py``'s JSON.

    .venv/bin/python benchmarks/bench_stride.py --data benchmarks/work/cpu/data/rotation.nc
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import write_json  # noqa: E402
from bench_frontier import surrogate_row  # noqa: E402
from bench_models import machine_name  # noqa: E402
import surrogate  # noqa: E402
from frontier_report import best_simulator  # noqa: E402


#: the study's main width; runs at other budgets get their own folders
DEFAULT_PARAMS = 60_000


def run_folder(work: Path, model: str, stride: int, params: int) -> Path:
    """Where one (model, stride, budget) run is cached."""
    tag = "" if params == DEFAULT_PARAMS else f"_p{params}"
    return work / f"{model}{tag}_stride{stride}"


def runs_of(args: argparse.Namespace) -> list[tuple[str, int]]:
    """The (model, parameter budget) pairs of one stride: ``--models`` x ``--params``,
    then ``--extra``; a malformed ``--extra`` is one line naming it."""
    pairs = [(m, p) for m in args.models for p in args.params]
    for item in args.extra:
        model, _, budget = item.partition(":")
        if not model or not budget.isdigit():
            raise SystemExit(f"--extra {item!r}: expected MODEL:PARAMS, e.g. gconv_unet:25000")
        pairs.append((model, int(budget)))
    return list(dict.fromkeys(pairs))


def thinned(base: Path, k: int, out: Path) -> Path:
    """``base`` with every ``k``-th stored frame (``dt`` and ``save_every`` scaled), written
    once to ``out``."""
    import xarray as xr
    if out.is_file():
        return out
    with xr.open_dataset(base) as ds:
        th = ds.isel(time=slice(None, None, k)).load()
    th.attrs["dt"] = float(ds.attrs["dt"]) * k
    th.attrs["save_every"] = int(ds.attrs["save_every"]) * k
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.nc")
    th.to_netcdf(tmp)
    tmp.replace(out)
    return out


def train_one(data: Path, out: Path, model: str, T_in: int, steps: int, seed: int,
              params: int, epochs: int | None = None) -> Path:
    """The ``cpu`` preset at ``T_in`` on ``data``, ~``params`` parameters (reused when
    ``out`` holds a finished run of the same settings)."""
    import train
    hidden = surrogate.width_for_params(model, params, T_in=T_in, depth=3)
    settings = {"data": str(data), "model": model, "T_in": T_in, "steps": steps,
                "seed": seed, "hidden": hidden, "epochs": epochs}
    done = out / "stride_run.json"
    if done.is_file() and json.loads(done.read_text()) == settings:
        return out / "best.pt"
    cfg = train.load_preset("cpu", data=[str(data)], out=str(out), model=model, T_in=T_in,
                            model_config={"hidden": hidden, "depth": 3}, seed=seed,
                            overwrite=True, progress=False, split={"test_steps": steps},
                            **({"epochs": epochs} if epochs else {}))
    best = train.fit(cfg)
    done.write_text(json.dumps(settings))
    return best


def score(sur, data: Path, steps: int, max_windows: int) -> dict:
    """Ratio of the model's RMSE (``sur``, a loaded Surrogate) to persistence's on the
    same windows, per split and for velocity and all fields, over ``steps`` frames."""
    import evaluate
    from evaluate.baselines import Persistence
    ds = evaluate.open_data([str(data)])
    out = {}
    for split in ("test-domain", "test-future"):
        w = evaluate.build_windows(sur.metadata, split, ds, sur.T_in, steps,
                                   max_windows=max_windows)
        m = evaluate.evaluate_split(sur, ds, w, batch_size=32, keep=0).summary
        p = evaluate.evaluate_split(Persistence(sur.layout, sur.T_in), ds, w, batch_size=32,
                                    keep=0).summary
        out[f"{split}/velocity"] = m["rmse_velocity"] / p["rmse_velocity"]
        out[f"{split}/all"] = m["rmse"] / p["rmse"]
    ds.close()
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "work" / "cpu" / "data"
                   / "rotation.nc", help="a dataset stored every 2 solver steps")
    p.add_argument("--strides", type=int, nargs="+", default=[1, 2, 4],
                   help="thinning factors of the data's own stride")
    p.add_argument("--models", nargs="+", default=["gconv_unet", "unet"])
    p.add_argument("--horizon", type=int, default=40, help="solver steps scored")
    p.add_argument("--T-in", dest="T_in", type=int, default=2)
    p.add_argument("--params", type=int, nargs="+", default=[DEFAULT_PARAMS],
                   help="parameter budgets: each model at each (leaner widths cost fewer "
                        "FLOPs per frame)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the preset's (tests)")
    p.add_argument("--extra", nargs="*", default=[], metavar="MODEL:PARAMS",
                   help="more (model, budget) runs beside --models x --params, e.g. "
                        "gconv_unet:25000 for a lean width of one model only")
    p.add_argument("--max-windows", type=int, default=32)
    p.add_argument("--batch", type=int, nargs="+", default=[32, 128],
                   help="rollout batch sizes timed; each model's best is reported")
    p.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "stride")
    p.add_argument("--frontier-json", type=Path,
                   default=ROOT / "benchmarks" / "results" / "frontier" / "frontier.json")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stride")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.command = "python benchmarks/bench_stride.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(2)
    import xarray as xr
    with xr.open_dataset(args.data) as ds:
        base_every = int(ds.attrs["save_every"])
    rows = []
    for k in args.strides:
        stride = base_every * k
        if args.horizon % stride:
            raise SystemExit(f"--horizon {args.horizon} is not a multiple of stride {stride}")
        data = thinned(args.data, k, args.work / f"data_stride{stride}.nc")
        steps = args.horizon // stride
        for model, params in runs_of(args):
            ckpt = train_one(data, run_folder(args.work, model, stride, params), model,
                             args.T_in, steps, args.seed, params, args.epochs)
            sur = surrogate.load(ckpt, device="cpu")
            speed = surrogate_row(sur, args.batch, 20, 3)
            rows.append({"stride": stride, "model": model, "steps": steps,
                         "params_target": params,
                         **score(sur, data, steps, args.max_windows), **speed,
                         "solver_steps_per_s": speed["fps"] * stride})
    sim = None
    if args.frontier_json.is_file():
        sim = best_simulator(json.loads(args.frontier_json.read_text())["simulator"]
                             .get("32", []))
    write(args, rows, sim)
    return 0


def _in_repo(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def write(args: argparse.Namespace, rows: list[dict], sim: dict | None) -> None:
    """``stride.md``, ``stride.json`` and ``stride.png`` in ``args.out``."""
    from stride_report import figure, markdown
    args.out.mkdir(parents=True, exist_ok=True)
    data = {"meta": {"date": dt.datetime.now().isoformat(timespec="seconds"),
                     "machine": machine_name(torch.device("cpu")),
                     "data": _in_repo(args.data), "command": args.command,
                     "horizon": args.horizon, "T_in": args.T_in, "seed": args.seed,
                     "params": sorted({p for _, p in runs_of(args)}, reverse=True),
                     "torch": torch.__version__,
                     "batch": args.batch, "frozen": True},
            "rows": rows, "simulator": sim}
    write_json(args.out / "stride.json", data)  # atomic: a kill leaves the old file
    (args.out / "stride.md").write_text(markdown(data))
    figure(data, args.out / "stride.png")
    print(f"wrote {args.out / 'stride.md'}")


if __name__ == "__main__":
    sys.exit(main())
