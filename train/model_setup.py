"""The model of a training run: built by name, on the device named, recorded as JSON,
and run once on the data's grid before any epoch so that a model that cannot take it
fails early."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from surrogate.breaking import canonical_breaking_inputs
from surrogate.symmetry import FieldLayout

from .config import ConfigError, TrainConfig
from .data import DataError, FieldData

__all__ = ["build_model", "resolve_device", "json_model_config",
           "check_model_fits"]


def build_model(name: str, **config: Any) -> nn.Module:
    """``surrogate.build_model`` (looked up at call time)."""
    from surrogate import build_model as _build
    return _build(name, **config)


def resolve_device(spec: str) -> torch.device:
    """:func:`surrogate.devices.resolve_device`, its errors as :class:`ConfigError`."""
    from surrogate.devices import DeviceError
    from surrogate.devices import resolve_device as _resolve
    try:
        return _resolve(spec)
    except DeviceError as e:
        raise ConfigError(str(e)) from None


def json_model_config(cfg: TrainConfig, layout: FieldLayout) -> dict[str, Any]:
    mc = {**cfg.model_config, "layout": layout.to_dict()}
    if "breaking_inputs" in mc:
        mc["breaking_inputs"] = list(canonical_breaking_inputs(mc["breaking_inputs"]))
    return mc


def check_model_fits(model: nn.Module, cfg: TrainConfig, data: FieldData,
                      device: torch.device) -> None:
    """One tiny forward before training, so that a grid the model cannot take fails with
    a clear message rather than inside the first epoch."""
    shape = (1, len(data.channels), data.ny, data.nx)
    inputs = [torch.zeros(1, cfg.T_in, *shape[1:], device=device)]
    if data.aux is not None:
        inputs.append(torch.zeros(1, len(data.aux_channels), data.ny, data.nx, device=device))
    was_training = model.training
    model.eval()  # no running statistics may change
    try:
        with torch.no_grad():
            y = model(*inputs)
    except Exception as e:
        config = getattr(model, "config", None)
        depth = config.get("depth") if isinstance(config, dict) else None
        hint = (f" (grid sides must be divisible by 2**(depth-1) = {2 ** (depth - 1)})"
                if depth else "")
        raise DataError(f"model {cfg.model!r} cannot run on the {data.ny}x{data.nx} grid "
                        f"with {shape[1]} channels{hint}: {e}") from None
    finally:
        model.train(was_training)
    if tuple(y.shape) != shape:
        raise DataError(f"model {cfg.model!r} maps (1, T_in, C, H, W) to {tuple(y.shape)}, "
                        f"expected {shape}")
