"""Named training recipes, one TOML file each in this folder (``cpu.toml``: the recipe
relaxflow's demo and benchmarks run on 2 CPU cores). A preset is a partial config: the
data, the output folder and the model come from the caller; its ``unset`` list names the
optional settings it turns off (TOML has no null).

    from train.presets import load_preset
    cfg = load_preset("cpu", data=["data/rotation.nc"], model="gconv_unet", out="runs/g")
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from ..config import ConfigError, TrainConfig, config_from_dict, merge_overrides, read_toml


def available_presets() -> list[str]:
    """The names of the presets shipped with relaxflow."""
    return sorted(p.name.removesuffix(".toml") for p in resources.files(__name__).iterdir()
                  if p.name.endswith(".toml"))


def preset(name: str) -> dict[str, Any]:
    """Preset ``name`` as a TOML-layout dict (see :func:`train.config.config_from_dict`)."""
    if name not in available_presets():
        raise ConfigError(f"unknown training preset {name!r}; available: "
                          f"{available_presets()}")
    with resources.as_file(resources.files(__name__) / f"{name}.toml") as path:
        d = read_toml(path)
    # TOML has no null: a preset lists the optional settings it leaves unset
    for key in d.pop("unset", []):
        d[key] = None
    return d


def load_preset(name: str, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` of preset ``name``; keyword ``overrides`` win."""
    return config_from_dict(merge_overrides(preset(name), overrides))
