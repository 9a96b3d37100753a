"""The plan: scales, studies, the datasets and training runs to do, widths, compute."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

from train.presets import load_preset

from . import ROOT, log, stable_hash

MODELS = ["unet", "gconv_unet", "relaxed_gconv_unet", "steer_unet", "relaxed_steer_unet"]
SCENARIOS = ["rotation", "translation", "boundary", "symmetric"]
STUDIES = ["main", "sweep", "inputs", "ablation", "table1"]
DEFAULT_STUDIES = ["main", "sweep", "inputs"]  # ablation on request (--studies ... ablation)
SPLITS = ["test-future", "test-domain"]
SWEEP_MODELS = ["unet", "gconv_unet", "relaxed_gconv_unet"]
INPUT_SCENARIOS = ["rotation", "boundary"]
# breaking symmetry by inputs: (label, model, breaking_inputs)
INPUT_VARIANTS = [
    ("strict", "gconv_unet", ()),
    ("relaxed", "relaxed_gconv_unet", ()),
    ("strict+cause", "gconv_unet", ("cause",)),
    ("strict+frame", "gconv_unet", ("frame",)),
    ("relaxed+cause", "relaxed_gconv_unet", ("cause",)),
    ("plain+coords", "unet", ("coords",)),
]
# why relaxed is (not) ahead: (label, model, model_config overrides, width taken from)
ABLATION_SCENARIOS = ["rotation", "symmetric"]
ABLATION_VARIANTS = [
    ("strict", "gconv_unet", {}, None),
    ("relaxed L=2", "relaxed_gconv_unet", {}, None),
    ("relaxed L=1", "relaxed_gconv_unet", {"num_banks": 1}, None),
    ("relaxed L=2 @ strict width", "relaxed_gconv_unet", {}, "gconv_unet"),
    ("strict steerable", "steer_unet", {}, None),
    ("relaxed steerable (relax_scale 1)", "relaxed_steer_unet", {}, None),
    ("relaxed steerable, relax_scale 0.1", "relaxed_steer_unet", {"relax_scale": 0.1}, None),
    ("relaxed steerable, alpha 1e-1", "relaxed_steer_unet", {"alpha": 1e-1}, None),
    ("relaxed steerable @ strict width", "relaxed_steer_unet", {}, "steer_unet"),
    ("relaxed steerable @ strict width, relax_scale 0.1", "relaxed_steer_unet",
     {"relax_scale": 0.1}, "steer_unet"),
]
# the paper's Table 1 as U-Nets on one skeleton; (label, model, options,
# scenarios or None for all); position-dependent models get the data grid
TABLE1_ROWS = [
    ("plain", "unet", {}, None),
    ("strict gconv", "gconv_unet", {}, None),
    ("strict steer", "steer_unet", {}, None),
    ("RPP", "rpp_unet", {}, None),
    ("combo", "combo_unet", {}, None),
    ("CLC", "clc_unet", {"grid": True}, ["translation"]),
    ("relaxed gconv", "relaxed_gconv_unet", {}, None),
    ("relaxed steer", "relaxed_steer_unet", {}, None),
    ("relaxed translation conv", "relaxed_conv_unet", {"grid": True}, None),
    ("relaxed roto-translation", "relaxed_gconv_unet", {"relax": "both", "grid": True},
     None),
    ("relaxed roto-translation steer", "relaxed_steer_unet",
     {"relax": "both", "grid": True}, None),
]


def table1_key(label: str, model: str, extra: dict) -> str:
    """A Table-1 row's key in the aggregates: its label when it sets options beyond the
    grid (a variant of its model), else the model name (the run the main study shares)."""
    return label if set(extra) - {"grid"} else model


STRICT_OF = {"relaxed_gconv_unet": "gconv_unet", "relaxed_steer_unet": "steer_unet"}
# rough relative cost of one training step (for scheduling the longest runs first)
COST = {"unet": 1.0, "gconv_unet": 2.3, "relaxed_gconv_unet": 1.8, "steer_unet": 3.5,
        "relaxed_steer_unet": 1.0, "rpp_unet": 2.5, "combo_unet": 3.3, "clc_unet": 2.0,
        "relaxed_conv_unet": 1.5}

#: the CPU recipe (train/presets/cpu.toml): its loss and target settings are part of
#: every run's cache key, so results of an older recipe are never reused
_CPU = load_preset("cpu")
RECIPE = {k: getattr(_CPU, k) for k in ("targets", "persistence_init", "noise", "schedule",
                                         "loss_weights", "nonnegative")}

SCALES: dict[str, dict[str, Any]] = {
    # 2 CPU cores: the demo's data design and recipe (docs/history.md, "Late-started
    # plumes"): 32 runs per dataset, half of the training runs recorded after 60 warm-up
    # steps (boundary: 23 from rest plus 12 late twins), T_in 8, batch 16, 15 x 32 steps
    # at lr 4e-3, ~60k parameters; the loss unrolled over K 6 steps (the demo's 3 costs
    # half and is worse: docs/history.md, "Unrolled loss steps K")
    "cpu": {
        "data": {"resolution": 32, "steps": 160, "save_every": 2, "late_start": 60},
        "scenario_params": {
            "rotation": {"n_magnitudes": 8, "base_buoyancy": 0.00375},   # 32 runs, 9 held out
            "translation": {"nx": 4, "ny": 8},                             # 32 runs, 9 held out
            # 32 runs + 12 late twins (docs/history.md, "Late twins"), 9 held out
            "boundary": {"n_inflows": 4, "n_magnitudes": 8, "base_buoyancy": 0.015,
                         "late_twins": True},
            "symmetric": {"n_magnitudes": 8, "base_buoyancy": 0.00375},  # 32 runs, 9 held out
        },
        "sweep": {"levels": [0.0, 0.5, 1.0], "n_magnitudes": 8, "asymmetry": 3.0,
                  "base_buoyancy": 0.00375},
        "model": {"depth": 3, "params": 60_000},
        "train": {"recipe": RECIPE, **{k: getattr(_CPU, k) for k in (
            "T_in", "K", "batch_size", "epochs", "max_steps_per_epoch", "lr", "lr_decay",
            "patience")}, "valid_stride": _CPU.split.valid_stride,
            "valid_steps": _CPU.valid_steps, "split_preset": _CPU.split.preset},
        "eval": {"steps": 20, "max_windows": 32, "batch_size": 32},
        "seeds": 3, "jobs": 2, "device": "cpu",
        # the regime map (benchmarks/bench_regime.py): one input frame, so that only the
        # orientation, never the history, can tell the settling direction
        "regime": {"settling_speeds": [0.3], "sweep_levels": [1.0], "T_in": 1,
                   "steer_on": []},
    },
    # the paper's sizes (Wang et al. 2022), meant for a CUDA GPU
    "paper": {
        "data": {"resolution": 64, "steps": 310, "save_every": 1},
        "scenario_params": {"rotation": {}, "translation": {}, "boundary": {},
                            "symmetric": {}},                  # preset (paper) sizes
        "sweep": {"levels": [0.0, 0.25, 0.5, 0.75, 1.0], "n_magnitudes": 2,
                  "asymmetry": 3.0},
        # the reference relaxed steerable C4 net: hidden 92 fields, ~5.6 M parameters
        "model": {"depth": 4, "params": 5_600_000},
        "train": {"recipe": RECIPE, "T_in": 10, "K": 6, "batch_size": 16, "epochs": 50,
                  "max_steps_per_epoch": None, "lr": 1e-3, "lr_decay": 0.95, "patience": 10,
                  "valid_stride": 1, "valid_steps": None, "split_preset": "paper"},
        "eval": {"steps": 20, "max_windows": None, "batch_size": 64},
        "seeds": 3, "jobs": 1, "device": "cuda",
    },
    # a pipeline check: one seed, one scenario, tiny everything (a few minutes)
    "smoke": {
        "data": {"resolution": 32, "steps": 100, "save_every": 2},
        "scenario_params": {"rotation": {"n_magnitudes": 2}, "translation": {"nx": 3, "ny": 2},
                            "boundary": {"n_inflows": 2, "n_magnitudes": 2},
                            "symmetric": {"n_magnitudes": 2}},
        "sweep": {"levels": [0.0, 1.0], "n_magnitudes": 2, "asymmetry": 3.0},
        "model": {"depth": 3, "params": 20_000},
        "train": {"recipe": RECIPE, "T_in": 4, "K": 2, "batch_size": 8, "epochs": 2,
                  "max_steps_per_epoch": 4, "lr": 2e-3, "lr_decay": 0.9, "patience": None,
                  "valid_stride": 4, "valid_steps": None, "split_preset": "auto"},
        "eval": {"steps": 20, "max_windows": 8, "batch_size": 32},
        "seeds": 1, "jobs": 2, "device": "cpu", "scenarios": ["rotation"],
        "studies": ["main", "inputs"],
        "regime": {"settling_speeds": [0.3], "sweep_levels": [1.0], "T_in": 1,
                   "steer_on": []},
    },
}


@dataclasses.dataclass
class Settings:
    """What one invocation asks for: the scale (with overrides) and the CLI choices."""
    scale_name: str
    scale: dict
    studies: list[str]
    scenarios: list[str]
    models: list[str]
    seeds: list[int]
    jobs: int
    threads: int
    device: str
    work: Path
    out_dir: Path
    dry_run: bool
    rows: list[str] | None = None   # Table-1 rows to run (None: all)


def resolve_settings(args: argparse.Namespace) -> Settings:
    """The scale's settings with the command line's overrides and defaults applied."""
    scale = copy.deepcopy(SCALES[args.scale])
    if args.params:
        scale["model"]["params"] = args.params
    if args.epochs:
        scale["train"]["epochs"] = args.epochs
    work = Path(args.work or ROOT / "benchmarks" / "work" / args.scale).resolve()
    out_dir = Path(args.out or (work / "results" if args.scale == "smoke"
                                else ROOT / "benchmarks" / "results")).resolve()
    return Settings(
        scale_name=args.scale, scale=scale,
        studies=args.studies or scale.get("studies", DEFAULT_STUDIES),
        scenarios=args.scenarios or scale.get("scenarios", SCENARIOS),
        models=args.models,
        seeds=(sorted(set(args.seed_list)) if args.seed_list else
               list(range(args.seeds if args.seeds is not None else scale["seeds"]))),
        jobs=args.jobs or scale["jobs"], threads=args.threads,
        device=args.device or scale["device"], work=work, out_dir=out_dir,
        dry_run=args.dry_run, rows=args.rows)


@dataclasses.dataclass
class DataJob:
    """One dataset to generate (or reuse): a scenario preset with its parameters."""
    key: str            # "rotation" or "breaking_sweep@0.5"
    scenario: str       # preset name
    params: dict
    path: str
    level: float | None = None


# The fields of RunTask (less those popped in key()) are the cache key of a run: renaming,
# adding or removing one invalidates every cached result under --work.
@dataclasses.dataclass
class RunTask:
    """One training run (model, options, seed, dataset) and how it is scored."""
    study: str          # "main" | "sweep" | "inputs" (a run may serve several)
    data_key: str
    label: str          # row label: model name or breaking-input variant
    model: str
    breaking_inputs: tuple
    seed: int
    hidden: int
    params: int
    out: str
    data_path: str
    train: dict
    eval: dict
    model_config: dict
    device: str
    threads: int
    variant: str = ""   # ablation label ("" for the plain model of its name)

    @property
    def cost(self) -> float:
        """Rough relative cost of the run (to schedule the longest runs first)."""
        return COST.get(self.model, 1.0) * (1.2 if self.breaking_inputs else 1.0)

    def key(self) -> str:
        """The run's cache key: a hash of the settings that change its result."""
        d = dataclasses.asdict(self)
        for k in ("study", "label", "threads", "params", "device", "variant"):
            d.pop(k)
        return stable_hash(d)


@dataclasses.dataclass
class Plan:
    """The datasets and runs of one invocation, and whether breaking inputs work."""
    djobs: list[DataJob]
    tasks: list[RunTask]
    notes: list[str]
    inputs_ok: bool
    why: str


def data_jobs(st: Settings) -> list[DataJob]:
    """The datasets the studies need, scenarios first, then the sweep's levels."""
    jobs: dict[str, DataJob] = {}
    base, data = dict(st.scale["data"]), st.work / "data"
    of_study = {"main": st.scenarios, "table1": st.scenarios, "inputs": INPUT_SCENARIOS,
                "ablation": ABLATION_SCENARIOS}
    need = {sc for study in st.studies for sc in of_study.get(study, ())}
    for sc in [s for s in SCENARIOS if s in need]:
        p = {**base, **st.scale["scenario_params"].get(sc, {})}
        jobs[sc] = DataJob(sc, sc, p, str(data / f"{sc}.nc"))
    if "sweep" in st.studies:
        sw = st.scale["sweep"]
        for lv in map(float, sw["levels"]):
            p = {**base, "levels": (lv,), "n_magnitudes": sw["n_magnitudes"],
                 "asymmetry": sw["asymmetry"]}
            k = f"breaking_sweep@{lv:g}"
            jobs[k] = DataJob(k, "breaking_sweep", p,
                              str(data / f"breaking_sweep_level{lv:g}.nc"), lv)
    return list(jobs.values())


def breaking_support() -> tuple[bool, str]:
    """Whether ``build_model`` takes ``breaking_inputs`` in this checkout."""
    try:
        from surrogate import build_model
        for name in ("frame", "cause", "coords"):
            build_model("gconv_unet", hidden=1, T_in=2, depth=2, breaking_inputs=[name])
        build_model("unet", hidden=1, T_in=2, depth=2, breaking_inputs=["coords"])
        return True, ""
    except Exception as e:  # noqa: BLE001 - any failure means "not usable yet"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return False, f"build_model(..., breaking_inputs=...) is not available: {msg}"


_WIDTHS: dict[tuple, tuple[int, int]] = {}


def width(model: str, scale: dict, breaking: tuple, extra: dict | None = None,
          hidden: int | None = None) -> tuple[int, int]:
    """(hidden, parameters) of ``model`` with ``extra``: at the scale's target or ``hidden``."""
    from surrogate import build_model, count_parameters, width_for_params
    extra = dict(extra or {})
    key = (model, breaking, json.dumps(extra, sort_keys=True), hidden, scale["model"]["params"],
           scale["model"]["depth"], scale["train"]["T_in"])
    if key not in _WIDTHS:
        cfg = {"T_in": scale["train"]["T_in"], "depth": scale["model"]["depth"], **extra}
        if breaking:
            cfg["breaking_inputs"] = list(breaking)
        h = hidden or width_for_params(model, scale["model"]["params"], **cfg)
        _WIDTHS[key] = (h, count_parameters(build_model(model, hidden=h, **cfg)))
    return _WIDTHS[key]


@dataclasses.dataclass
class _TaskSet:
    """Runs keyed by their output folder; a run asked for by several studies is one run."""
    scale: dict
    by_key: dict[str, DataJob]
    work: Path
    device: str
    threads: int
    tasks: dict[str, RunTask] = dataclasses.field(default_factory=dict)

    def add(self, study: str, data_key: str, label: str, model: str, breaking: tuple,
            seed: int, extra: dict | None = None, width_of: str | None = None,
            variant: str = "") -> None:
        """Add one run, or name ``study`` on the run already planned with its folder."""
        extra = dict(extra or {})
        # an ablation variant has its own options, or the width of another model
        # (of the same group: a D4 row at the strict width takes the strict D4 width)
        group = {k: v for k, v in extra.items() if k == "group"}
        h = width(width_of, self.scale, breaking, group)[0] if width_of else None
        h, n = width(model, self.scale, breaking, extra, hidden=h)
        tag = "+".join((model, *breaking))
        if variant:
            tag += "@" + "".join(c if c.isalnum() else "-" for c in variant)
        # the model's own options at their resolved values, so that a changed default
        # (relax_scale 0.1 -> 1 on 2026-12-02) changes the cache key and retrains
        from surrogate.records import ModelConfig
        from surrogate.registry import MODELS
        entry = MODELS[model]
        rotation = extra.get("relax", "rotation") == "rotation"
        mc = {**{k: ModelConfig.defaults()[k] for k in entry.conv_options
                 if not (rotation and k in entry.relax_only)},
              "hidden": h, "depth": self.scale["model"]["depth"], **extra}
        if breaking:
            mc["breaking_inputs"] = list(breaking)
        t = RunTask(study, data_key, label, model, tuple(breaking), seed, h, n,
                    str(self.work / "runs" / data_key / tag / f"seed{seed}"),
                    self.by_key[data_key].path, dict(self.scale["train"]),
                    dict(self.scale["eval"]), mc, self.device, self.threads, variant)
        prev = self.tasks.setdefault(t.out, t)
        if study not in prev.study.split(","):  # a run planned before: name this study too
            prev.study += "," + study


def _study_runs(study: str, st: Settings, djobs: list[DataJob], inputs_ok: bool):
    """The runs of one study as ``_TaskSet.add`` arguments less study and seed: (data key,
    label, model, breaking inputs, options, width taken from, variant label)."""
    if study == "main":  # the five models on each scenario
        for sc in st.scenarios:
            for m in st.models:
                yield sc, m, m, (), None, None, ""
    elif study == "sweep":  # plain, strict and relaxed on each breaking level
        for d in djobs:
            for m in SWEEP_MODELS:
                if d.level is not None and m in st.models:
                    yield d.key, m, m, (), None, None, ""
    elif study == "inputs":  # the breaking-input variants, breaking inputs only where supported
        for sc in INPUT_SCENARIOS:
            for label, m, br in INPUT_VARIANTS:
                if inputs_ok or not br:
                    yield sc, label, m, br, None, None, ""
    elif study == "ablation":  # a variant with its own options or width: its own label
        for sc in ABLATION_SCENARIOS:
            for label, m, extra, width_of in ABLATION_VARIANTS:
                var = label if (extra or width_of) else ""
                yield sc, var or m, m, (), extra, width_of, var
    elif study == "table1":  # the rows asked for; the main study's are shared
        res = st.scale["data"]["resolution"]
        for sc in st.scenarios:
            for label, m, extra, only in TABLE1_ROWS:
                if (only is None or sc in only) and (not st.rows or label in st.rows):
                    key = table1_key(label, m, extra)
                    opts = {k: ([res, res] if k == "grid" else v) for k, v in extra.items()}
                    yield sc, key, m, (), opts, None, "" if key == m else key


def build_plan(st: Settings) -> Plan:
    """The datasets and runs for ``st`` (checks first whether breaking inputs work); the
    runs of every study, a run asked for by several only once, the most expensive first."""
    inputs_ok, why = breaking_support() if "inputs" in st.studies else (True, "")
    djobs = data_jobs(st)
    ts = _TaskSet(st.scale, {d.key: d for d in djobs}, st.work, st.device, st.threads)
    for study in [s for s in STUDIES if s in st.studies]:
        for dk, label, m, br, extra, width_of, var in _study_runs(study, st, djobs, inputs_ok):
            for seed in st.seeds:
                ts.add(study, dk, label, m, br, seed, extra, width_of, var)
    notes = (["breaking-input variants with breaking inputs skipped"]
             if "inputs" in st.studies and not inputs_ok else [])
    return Plan(djobs, sorted(ts.tasks.values(), key=lambda t: -t.cost), notes, inputs_ok, why)


def train_samples_per_epoch(scale: dict, djob: DataJob) -> int:
    """Training windows one epoch visits (the train split ``train.fit`` would resolve, from
    the scenario spec alone: no data needed)."""
    import simulate
    from train.splits import SplitConfig, resolve_splits
    spec = simulate.preset(djob.scenario, **djob.params)
    tr = scale["train"]
    split = resolve_splits(
        SplitConfig(preset=tr["split_preset"], test_steps=scale["eval"]["steps"],
                    valid_stride=tr["valid_stride"]),
        n_time=spec.n_frames, n_sims=len(spec.sims), T_in=tr["T_in"], K=tr["K"],
        valid_steps=tr.get("valid_steps") or tr["K"],
        heldout_coord=[s.heldout for s in spec.sims])
    n = len(split.train)
    if tr["max_steps_per_epoch"]:
        n = min(n, tr["max_steps_per_epoch"] * tr["batch_size"])
    return n


def _forward_flop(t: RunTask, T_in: int, res: int) -> float:
    """Forward FLOPs of the run's model on one sample, counted by torch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from surrogate import build_model
    m = build_model(t.model, T_in=T_in, **t.model_config)
    args = (torch.zeros(1, T_in, 3, res, res),)
    if t.breaking_inputs:
        from surrogate.breaking import data_layout
        c = len(data_layout(t.breaking_inputs).channels)
        args += (torch.zeros(1, c, res, res),) if c else ()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(*args)
    return float(fc.get_total_flops())


def train_flop(scale: dict, tasks: list[RunTask], djobs: list[DataJob]) -> float:
    """Training FLOPs of the plan, summed over runs (validation and tests left out):
    forward FLOPs per sample (at batch 1) x 3 (forward + backward) x K steps x windows
    per epoch x epochs."""
    tr = scale["train"]
    by_key = {d.key: d for d in djobs}
    fwd: dict[str, float] = {}
    samples: dict[str, int] = {}
    total = 0.0
    for t in tasks:
        mk = json.dumps([t.model, t.model_config], sort_keys=True)
        if mk not in fwd:
            fwd[mk] = _forward_flop(t, tr["T_in"], scale["data"]["resolution"])
        if t.data_key not in samples:
            samples[t.data_key] = train_samples_per_epoch(scale, by_key[t.data_key])
        total += fwd[mk] * 3 * tr["K"] * samples[t.data_key] * tr["epochs"]
    return total


def log_plan(st: Settings, plan: Plan) -> None:
    """Log the plan: datasets, training settings and each model's width and parameters."""
    if not plan.inputs_ok:
        log(f"NOTE: {plan.why}; the breaking-input variants with breaking inputs are skipped "
            "(strict and relaxed still run)")
    tr, ev = st.scale["train"], st.scale["eval"]
    log(f"scale {st.scale_name}: {len(plan.djobs)} datasets, {len(plan.tasks)} training "
        f"runs, {st.jobs} parallel jobs x {st.threads} thread(s), device {st.device}")
    log(f"work {st.work}; results {st.out_dir}")
    for d in plan.djobs:
        log(f"  data {d.key:22s} {d.scenario} {d.params}")
    log(f"  train T_in {tr['T_in']} K {tr['K']} batch {tr['batch_size']} epochs "
        f"{tr['epochs']} (max {tr['max_steps_per_epoch']} steps each) lr {tr['lr']} "
        f"decay {tr['lr_decay']} patience {tr['patience']} split {tr['split_preset']}; "
        f"eval {ev['steps']}-step rollouts, <= {ev['max_windows']} windows per split")
    seen = set()
    for t in plan.tasks:
        if (t.model, t.breaking_inputs, t.variant) not in seen:
            seen.add((t.model, t.breaking_inputs, t.variant))
            name = "+".join((t.model, *t.breaking_inputs))
            name += f" ({t.variant})" if t.variant else ""
            log(f"  model {name:44s} depth {st.scale['model']['depth']} hidden "
                f"{t.hidden:3d} params {t.params:,}")


def log_estimate(st: Settings, plan: Plan) -> None:
    """Log the runs per study and the plan's training compute (the dry run's summary)."""
    counts = Counter(s for t in plan.tasks for s in t.study.split(","))
    log(f"  runs per study: {dict(counts)}; seeds {st.seeds}")
    tf = train_flop(st.scale, plan.tasks, plan.djobs) / 1e12
    log(f"  training compute (forward x3 x K x windows x epochs, validation and tests "
        f"left out): {tf:,.1f} TFLOP = {tf / 100 / 3600:,.2f} h at a sustained 100 "
        f"TFLOP/s, {tf / 10 / 3600:,.1f} h at 10 TFLOP/s")
    log("dry run: nothing generated or trained")
