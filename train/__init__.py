"""relaxflow training: autoregressive multi-step training of surrogates, from one CPU
to many GPUs (``torchrun``).

    from train import TrainConfig, fit
    best = fit(TrainConfig(data=["data/rotation.nc"], model="relaxed_gconv_unet",
                           model_config={"hidden": 16, "depth": 4}, out="runs/rg"))

Command line: ``python -m train --help`` (also ``relaxflow-train``).
"""

from .config import ConfigError, SplitConfig, TrainConfig, load_config
from .data import DataError, open_data
from .loop import TrainingError, fit
from .presets import available_presets, load_preset, preset
from .splits import SplitSpec, resolve_splits

__all__ = ["fit", "TrainConfig", "SplitConfig", "load_config", "ConfigError", "DataError",
           "TrainingError", "open_data", "resolve_splits", "SplitSpec", "preset",
           "load_preset", "available_presets"]
