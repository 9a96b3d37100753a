"""What each ``--size`` runs. ``tiny``: the same code paths at CPU-test sizes (well under
a minute on one core); ``full``: the GPU sizes, meant to fit in 8 minutes on one H100.

``budget_s`` is a soft deadline for the whole run, shared out over the parts by
``shares`` (cumulative: time a part leaves unused passes on). Items are checked against
it before they start, so one long item (a compile) can overrun it; items not started in
time are recorded as skipped."""

from __future__ import annotations

import copy
from typing import Any

SPEED_MODELS = ["unet", "gconv_unet", "relaxed_gconv_unet"]
PROBE_MODELS = ["unet", "gconv_unet", "relaxed_gconv_unet", "steer_unet",
                "relaxed_steer_unet"]   # the models of the benchmark's default studies

_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "budget_s": None,
        "shares": {"1": 0.35, "2": 0.4, "3": 0.25},
        # part 1: a small rotation dataset, two short trainings, resume, forecast, DDP
        "smoke": {"resolution": 16, "steps": 24, "save_every": 1, "n_magnitudes": 2,
                  "model": "relaxed_gconv_unet", "hidden": 2, "depth": 2, "T_in": 2,
                  "K": 2, "batch_size": 4, "max_steps_per_epoch": 2, "test_steps": 4,
                  "forecast_steps": 4, "timeout_s": 180},
        # part 2: bench_speed's functions; "params": the width targets
        "speed": {"resolutions": [16], "params": [2e4], "models": SPEED_MODELS,
                  "modes": ["fp32", "bf16", "bf16+compile"], "T_in": 4, "depth": 2,
                  "batch": 4, "rollout_steps": 2, "reps": 1, "warmup": 2, "stride": 4,
                  "sim_steps": 12, "sims": 4, "eager_sims": 1, "eager_steps": 6,
                  "cpu_sim_resolutions": [16], "cpu_sim_steps": 12, "cpu_eager_steps": 6},
        # part 3: the paper plan's step counts, tiny models and batches
        "probe": {"scale_overrides": {"model": {"params": 3000, "depth": 2},
                                      "data": {"resolution": 16}},
                  "batch": 2, "steps": 3, "warmup": 1, "amps": ["none", "bf16"]},
    },
    "full": {
        "budget_s": 420,
        "shares": {"1": 0.34, "2": 0.4, "3": 0.26},
        "smoke": {"resolution": 32, "steps": 60, "save_every": 2, "n_magnitudes": 2,
                  "model": "relaxed_gconv_unet", "hidden": 8, "depth": 3, "T_in": 4,
                  "K": 3, "batch_size": 8, "max_steps_per_epoch": 16, "test_steps": 8,
                  "forecast_steps": 5, "timeout_s": 300},
        # the benchmark's settings (bench_speed.py: batch 32, T_in 10, depth 4, ~1M and
        # ~100k parameters); the compiled rows come last, so a short budget drops them;
        # the simulator on the CPU (with a cuda device) at the committed figure's grid
        "speed": {"resolutions": [64, 128], "params": [1e6, 1e5], "models": SPEED_MODELS,
                  "modes": ["fp32", "bf16", "bf16+compile"], "T_in": 10, "depth": 4,
                  "batch": 32, "rollout_steps": 20, "reps": 3, "warmup": 3, "stride": 4,
                  "sim_steps": 100, "sims": 32, "eager_sims": 1, "eager_steps": 20,
                  "cpu_sim_resolutions": [64], "cpu_sim_steps": 40, "cpu_eager_steps": 10},
        # SCALES["paper"] as it is: 64x64, T_in 10, K 6, batch 16, ~5.6M parameters
        "probe": {"scale_overrides": {}, "batch": None, "steps": 100, "warmup": 5,
                  "amps": ["none", "bf16"]},
    },
}


def size(name: str) -> dict[str, Any]:
    """A copy of the settings of size ``name`` (``tiny`` or ``full``)."""
    return copy.deepcopy(_SIZES[name])


def names() -> list[str]:
    """The sizes ``--size`` accepts."""
    return list(_SIZES)
