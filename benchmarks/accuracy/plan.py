"""The plan: the datasets and training runs one invocation does (studies and scales:
:mod:`.scales`), their widths and compute."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from collections import Counter
from pathlib import Path

from . import ROOT, log, stable_hash
from .scales import (MODELS, SCENARIOS, STUDIES, DEFAULT_STUDIES, SPLITS, SWEEP_MODELS,
                     INPUT_SCENARIOS, INPUT_VARIANTS, ABLATION_SCENARIOS, ABLATION_VARIANTS,
                     TABLE1_ROWS, STRICT_OF, COST, RECIPE, SCALES, table1_key)


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
    work: str = ""      # the cache folder ``out`` and ``data_path`` lie in ("": none)

    @property
    def cost(self) -> float:
        """Rough relative cost of the run (to schedule the longest runs first)."""
        return COST.get(self.model, 1.0) * (1.2 if self.breaking_inputs else 1.0)

    def key(self) -> str:
        """The run's cache key: a hash of the settings that change its result, its paths
        taken relative to the cache folder (a cache moved or copied elsewhere is reused)."""
        d = self._key_fields()
        if self.work:
            for k in ("out", "data_path"):
                if Path(d[k]).is_relative_to(self.work):
                    d[k] = Path(d[k]).relative_to(self.work).as_posix()
        return stable_hash(d)

    def legacy_key(self) -> str:
        """The key of the runs cached before keys were relative: the same hash over the
        absolute paths (such a run is reused where it was trained, and re-keyed)."""
        return stable_hash(self._key_fields())

    def _key_fields(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("study", "label", "threads", "params", "device", "variant", "work"):
            d.pop(k)
        return d


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
                    dict(self.scale["eval"]), mc, self.device, self.threads, variant,
                    str(self.work))
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
