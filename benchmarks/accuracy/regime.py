"""The regime map: when does a relaxed layer earn its place?

Three axes: how strongly the data break the symmetry (``strength``), whether the input
shows the cause of the breaking (``shown``: the buoyancy magnitude of ``breaking_sweep``
is readable from one frame; ``hidden``: the fixed settling direction of ``settling`` is
not, to six frame statistics, though a strict network reads it; ``unseen``: the settling
direction of ``drift``, the stirred periodic box, is read by neither), and the width of
the relaxed models (at equal parameters, narrower than the strict model, and at the
strict model's width). Plain, strict and relaxed group convs
(and the steerable pair on the datasets named in the scale) run with several seeds at the
accuracy benchmark's recipe; every cell is a ratio to persistence on the same windows.
Beside each dataset: the observability probe (``evaluate.observability``) and the data's
own equivariance error.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

from . import ROOT, log, stable_hash, write_json
from .plan import SCALES, SPLITS, DataJob, Plan, _TaskSet

#: the datasets of the D4 rows: the twin and the hidden breaking (settling keeps only the
#: mirror x -> -x of D4, so a D4 model is where relaxation has the most to give back)
D4_DATA = ("symmetric", "settling@0.3")
#: the D4 pair (strict, relaxed at its width) also runs at the stronger settling
D4_PAIR_DATA = D4_DATA + ("settling@0.6",)
#: the twin and the fastest settling again, every wall of some magnitudes held out (the
#: paper's unseen forces: no held-out run has a rotated partner in training); the
#: plain model and the D4 pairs (group conv, steerable) run there, and the C4 pair on
#: the settling one
MAG_SUFFIX = "~magnitudes"
#: (label, model, options, width taken from (with the row's group), datasets (None: the
#: map's; a name: the datasets ``build_plan`` gives it), seeds (None: all)); plain and
#: relaxed D4 on ``rotation`` are discovery runs; on ``drift`` (the stirred periodic box)
#: plain and the group-conv D4 pair run on it and its twin, and the strongest strict
#: model of the map (the steerable D4 net) on the settling one
REGIME_VARIANTS = [
    ("plain", "unet", {}, None, None, None),
    ("strict gconv", "gconv_unet", {}, None, None, None),
    ("relaxed gconv", "relaxed_gconv_unet", {}, None, None, None),
    ("relaxed gconv @ strict width", "relaxed_gconv_unet", {}, "gconv_unet", None, None),
    ("strict steer", "steer_unet", {}, None, "steer", None),
    ("relaxed steer @ strict width", "relaxed_steer_unet", {}, "steer_unet", "steer", None),
    ("plain", "unet", {}, None, ("rotation",), (0,)),
    ("relaxed gconv D4", "relaxed_gconv_unet", {"group": "D4"}, None, ("rotation",), (0,)),
    ("strict gconv D4", "gconv_unet", {"group": "D4"}, None, D4_PAIR_DATA, None),
    ("relaxed gconv D4", "relaxed_gconv_unet", {"group": "D4"}, None, D4_DATA, None),
    ("relaxed gconv D4 @ strict width", "relaxed_gconv_unet", {"group": "D4"}, "gconv_unet",
     D4_PAIR_DATA, None),
    ("plain", "unet", {}, None, "magnitudes", None),
    ("strict gconv D4", "gconv_unet", {"group": "D4"}, None, "magnitudes", None),
    ("relaxed gconv D4 @ strict width", "relaxed_gconv_unet", {"group": "D4"}, "gconv_unet",
     "magnitudes", None),
    ("strict gconv", "gconv_unet", {}, None, "hidden magnitudes", None),
    ("relaxed gconv @ strict width", "relaxed_gconv_unet", {}, "gconv_unet",
     "hidden magnitudes", None),
    ("strict steer D4", "steer_unet", {"group": "D4"}, None, "magnitudes", None),
    ("relaxed steer D4 @ strict width", "relaxed_steer_unet", {"group": "D4"}, "steer_unet",
     "magnitudes", None),
    ("plain", "unet", {}, None, "drift", None),
    ("strict gconv D4", "gconv_unet", {"group": "D4"}, None, "drift", None),
    ("relaxed gconv D4 @ strict width", "relaxed_gconv_unet", {"group": "D4"}, "gconv_unet",
     "drift", None),
    ("strict steer D4", "steer_unet", {"group": "D4"}, None, "drift breaking", None),
]
#: what one frame shows of the cause, in words: ``settling`` hides it from the probe's
#: six statistics, but a strict network reads it from one frame (from frame 5 on)
SHOWS_TEXT = {"—": "no breaking", "hidden": "cause hidden from statistics",
              "shown": "cause shown", "unseen": "cause hidden from a strict network"}
#: the scores of a run, by column name
METRICS = {"all": "rmse", "velocity": "rmse_velocity", "density": "rmse_density"}


@dataclasses.dataclass
class RegimeData:
    """One dataset of the map: its job, breaking strength and what the input shows."""
    job: DataJob
    strength: float
    shows: str          # "shown", "hidden", "unseen" or "—" (nothing to show: a twin)
    in_map: bool = True  # False: a dataset of the discovery runs only
    held_out: str = "runs"  # or "magnitudes": every wall of some magnitudes held out;
    # "patterns": every turn of some stirred starts held out (``drift``)


def regime_data(scale: dict, work: Path) -> list[RegimeData]:
    """The map's datasets: the symmetric twin, ``settling`` at each speed (hidden),
    ``breaking_sweep`` at each level (shown), the magnitude splits, and ``drift`` at
    each speed (unseen) with its twin, in the scale's sizes."""
    rg, base, data = scale["regime"], dict(scale["data"]), work / "data"
    sym = {**base, **scale["scenario_params"]["symmetric"]}
    out = [RegimeData(DataJob("symmetric", "symmetric", sym, str(data / "symmetric.nc")),
                      0.0, "—")]
    for v in rg["settling_speeds"]:
        k = f"settling@{v:g}"
        out.append(RegimeData(DataJob(k, "settling", {**sym, "settling_speed": float(v)},
                                      str(data / f"settling_{v:g}.nc"), v), v, "hidden"))
    sw = scale["sweep"]
    for lv in rg["sweep_levels"]:
        k = f"breaking_sweep@{lv:g}"
        p = {**base, "levels": (float(lv),), "n_magnitudes": sw["n_magnitudes"],
             "asymmetry": sw["asymmetry"], "base_buoyancy": sw.get("base_buoyancy", 0.01)}
        out.append(RegimeData(DataJob(k, "breaking_sweep", p,
                                      str(data / f"breaking_sweep_level{lv:g}.nc"), lv),
                              lv, "shown"))
    # the twin and a settling speed of the map again, whole magnitudes held out
    by_key = {d.job.key: d for d in out}
    for v in rg.get("held_out_magnitudes", []):
        if f"settling@{v:g}" not in by_key:
            raise ValueError(f"regime.held_out_magnitudes {v:g} is not one of the map's "
                             f"settling_speeds {rg['settling_speeds']}")
        for src in (by_key["symmetric"], by_key[f"settling@{v:g}"]):
            key = src.job.key + MAG_SUFFIX
            if key in by_key:                       # the twin once for all speeds
                continue
            path = Path(src.job.path)
            job = dataclasses.replace(src.job, key=key,
                                      params={**src.job.params, "held_out": "magnitudes"},
                                      path=str(path.with_name(path.stem + "_magnitudes.nc")))
            by_key[key] = dataclasses.replace(src, job=job, held_out="magnitudes")
            out.append(by_key[key])
    # the stirred periodic box: its twin (no settling) and each settling speed, every
    # turn of some starts held out; one frame hides the settling direction even from a
    # strict network (the four turns of a start are exact rotations of each other)
    drift_speeds = [v for v in rg.get("drift_speeds", []) if v]      # 0: the twin, once
    for v in ([0.0] if drift_speeds else []) + drift_speeds:
        k = f"drift@{v:g}"
        p = {**base, **scale["scenario_params"].get("drift", {}), "settling_speed": float(v)}
        out.append(RegimeData(DataJob(k, "drift", p, str(data / f"drift_{v:g}.nc"), v), v,
                              "unseen" if v else "—", held_out="patterns"))
    rot = {**base, **scale["scenario_params"]["rotation"]}
    out.append(RegimeData(DataJob("rotation", "rotation", rot, str(data / "rotation.nc")),
                          math.nan, "shown", in_map=False))
    return out


def regime_scale(scale_name: str) -> dict:
    """The scale's settings with the map's input length ``regime.T_in`` for training."""
    scale = copy.deepcopy(SCALES[scale_name])
    scale["train"]["T_in"] = scale["regime"]["T_in"]
    return scale


def parse_only(only: list[str] | None, datasets: list[RegimeData]) -> dict[str, set | None]:
    """``DATA`` or ``DATA/LABEL`` selections -> data key -> labels (None: all of its runs);
    raises ValueError naming an unknown dataset or a label the map does not run."""
    keys = {d.job.key for d in datasets}
    labels = {v[0] for v in REGIME_VARIANTS}
    out: dict[str, set | None] = {}
    for item in only or []:
        key, _, label = item.partition("/")
        key, label = key.strip(), label.strip()
        if key not in keys:
            raise ValueError(f"--only {item!r}: no dataset {key!r} in the map "
                             f"(it has {', '.join(sorted(keys))})")
        if label and label not in labels:
            raise ValueError(f"--only {item!r}: no run labelled {label!r} "
                             f"(labels: {', '.join(sorted(labels))})")
        if not label:
            out[key] = None
        elif out.get(key, set()) is not None:
            out.setdefault(key, set()).add(label)
    return out


def build_plan(scale: dict, seeds: list[int], work: Path, device: str, threads: int,
               only: list[str] | None = None) -> tuple[Plan, list[RegimeData]]:
    """Every (dataset, variant, seed) of the map, the most expensive first; ``only``
    (``DATA`` or ``DATA/LABEL`` items) keeps those datasets and runs alone."""
    datasets = regime_data(scale, work)
    chosen = parse_only(only, datasets)
    if chosen:
        datasets = [d for d in datasets if d.job.key in chosen]
    ts = _TaskSet(scale, {d.job.key: d.job for d in datasets}, work, device, threads)
    mags = [d for d in datasets if d.held_out == "magnitudes"]
    named = {"steer": scale["regime"]["steer_on"],
             "magnitudes": [d.job.key for d in mags],
             "hidden magnitudes": [d.job.key for d in mags if d.shows == "hidden"],
             "drift": [d.job.key for d in datasets if d.held_out == "patterns"],
             "drift breaking": [d.job.key for d in datasets
                                if d.held_out == "patterns" and d.shows == "unseen"]}
    for d in datasets:
        for label, model, extra, width_of, on, seeds_of in REGIME_VARIANTS:
            keys = named.get(on, on) if on is not None else None
            if (d.job.key not in keys) if keys is not None else (
                    not d.in_map or d.held_out != "runs"):
                continue
            if chosen.get(d.job.key) is not None and label not in chosen[d.job.key]:
                continue
            var = label if (extra or width_of) else ""
            for seed in [s for s in seeds if seeds_of is None or s in seeds_of]:
                ts.add("regime", d.job.key, label, model, (), seed, extra, width_of, var)
    tasks = sorted(ts.tasks.values(), key=lambda t: -t.cost)
    return Plan([d.job for d in datasets], tasks, [], True, ""), datasets


def ratios(results: list[dict], base: dict[str, dict[str, dict[str, float]]]
           ) -> dict[tuple[str, str], dict[str, dict[str, list[float]]]]:
    """(data key, label) -> split -> column -> per-seed ratio to persistence."""
    out: dict = {}
    for r in sorted((r for r in results if "error" not in r), key=lambda r: r["seed"]):
        b = base.get(r["data_key"])
        if b is None:
            continue
        cell = out.setdefault((r["data_key"], r["label"]), {})
        for split in SPLITS:
            for col, key in METRICS.items():
                val, ref = r["scores"][split].get(key), b[col].get(split)
                if val is not None and ref:
                    cell.setdefault(split, {}).setdefault(col, []).append(val / ref)
    return out


def persistence_by_data(plan: Plan, results: list[dict], ev: dict) -> dict:
    """data key -> column -> split -> persistence RMSE, on the windows of the dataset's
    first finished run."""
    from .run import persistence
    task_of = {t.key(): t for t in plan.tasks}
    out = {}
    for d in plan.djobs:
        r = next((r for r in results if r.get("data_key") == d.key and "error" not in r), None)
        if r is not None:
            ck = str(Path(task_of[r["key"]].out) / "best.pt")
            a, v, dens = persistence(d.path, ck, ev["steps"], ev["max_windows"], "density")
            out[d.key] = {"all": a, "velocity": v, "density": dens}
    return out


def _probe_key(ds, frames) -> str:
    """What the probe's result depends on: the dataset (its spec and when it was
    written, so a dataset made again under the same spec recomputes), the frames, the
    code of the probes and of the probe's network, and torch's version."""
    import torch

    import evaluate.invariant_probe as inv
    import evaluate.observability as obs
    import simulate.equivariance as eq
    import surrogate.layers.group_conv as gc
    import surrogate.nets.unet as un
    code = "".join(Path(m.__file__).read_text() for m in (obs, inv, eq, gc, un))
    return stable_hash([ds.attrs.get("spec", ""), ds.attrs.get("created", ""), list(frames),
                        code, torch.__version__])


def cached_probe(path: str | Path, frames=(2, 5)) -> dict:
    """The observability probe (the statistics, and one frame through a strict network)
    and the data equivariance error (velocity; density apart) of the dataset at ``path``,
    as JSON data. Kept beside the dataset (``NAME.probe.json``) and reused while the
    dataset, the frames and the probes' code are unchanged: the strict-network fit costs
    minutes."""
    import simulate
    from evaluate.observability import observability
    cache = Path(path).with_suffix(".probe.json")
    with simulate.open_dataset(path) as ds:
        key = _probe_key(ds, frames)
        if cache.is_file() and (old := json.loads(cache.read_text())).get("key") == key:
            return old["result"]
        res = observability(ds, frames, invariant=True)
        try:
            ee = float(simulate.data_equivariance_error(ds))
            ee_d = float(simulate.data_equivariance_error(ds, ("density",)))
        except Exception:  # noqa: BLE001 - no rotated partner runs
            ee = ee_d = None
    out = json.loads(json.dumps({               # as read back: frame keys are text
        **dataclasses.asdict(res), "line": res.line(), "data_equivariance_error": ee,
        "data_equivariance_error_density": ee_d}))
    write_json(cache, {"key": key, "result": out})
    return out


def probe(datasets: list[RegimeData], frames=(2, 5)) -> dict[str, dict]:
    """:func:`cached_probe` of each dataset, by its key."""
    return {d.job.key: cached_probe(d.job.path, frames) for d in datasets}


def separated(a: list[float], b: list[float]) -> bool:
    """Whether every seed of ``a`` is below every seed of ``b`` (beyond the spread; never
    with fewer than two seeds on a side, where there is no spread to speak of)."""
    return len(a) > 1 and len(b) > 1 and max(a) < min(b)


def log_plan(plan: Plan, datasets: list[RegimeData], scale: dict) -> None:
    """Datasets, runs and widths of the map."""
    log(f"regime map: {len(plan.djobs)} datasets, {len(plan.tasks)} runs, T_in "
        f"{scale['train']['T_in']}")
    for d in datasets:
        log(f"  data {d.job.key:22s} strength {d.strength:g} cause {d.shows}")
    seen = set()
    for t in plan.tasks:
        if t.label not in seen:
            seen.add(t.label)
            log(f"  {t.label:30s} {t.model:20s} hidden {t.hidden:3d} params {t.params:,}")


def default_work(scale_name: str, epochs: int | None = None) -> Path:
    """The cache of the map's datasets and runs (at ``epochs``: a cache of its own)."""
    tail = f"-e{epochs}" if epochs is not None else ""
    return ROOT / "benchmarks" / "work" / f"regime-{scale_name}{tail}"


def to_json(rat: dict) -> dict:
    """The ratios keyed ``"data key | label"`` (JSON keys are strings)."""
    return {f"{k[0]} | {k[1]}": v for k, v in rat.items()}

