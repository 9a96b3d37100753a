"""What the accuracy benchmark runs: the models, scenarios and studies, each study's
variants, and the scales (data sizes and training budget per machine class). The CPU
scale's recipe is the ``cpu`` training preset (``train/presets/cpu.toml``)."""

from __future__ import annotations

from typing import Any

from train.presets import load_preset

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
            "drift": {"n_patterns": 8},                                  # 32 runs, 8 held out
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
        # orientation, never the history, can tell the settling direction; two settling
        # speeds make the strength axis of the hidden breaking; the twin and the faster
        # settling once more with whole magnitudes held out (unseen forces); the stirred
        # periodic box whose settling no frame shows, and its twin
        "regime": {"settling_speeds": [0.3, 0.6], "sweep_levels": [1.0], "T_in": 1,
                   "steer_on": [], "held_out_magnitudes": [0.6], "drift_speeds": [0.6]},
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
