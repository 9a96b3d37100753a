"""Model registry: U-Net surrogates with one interface, one row each in :data:`MODELS`
(the convolution, the groups it is exact for, its extra options; the README's model
table gives every model's equation and penalty).

``build_model(name, **config)`` accepts the options of :class:`ModelConfig` (options
that do not apply to a model are ignored); ``model.config`` records only what applies,
and ``build_model(**model.config)`` rebuilds the same architecture. ``hidden`` counts
*fields* (a field is ``|G|`` channels), so compare models at equal parameter count with
:func:`width_for_params`. With ``breaking_inputs`` (:mod:`surrogate.breaking`) a model
maps ``(x (B, T_in, C, H, W), aux (B, C_aux, H, W)) -> (B, C, H, W)``.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from .groups import get_group
from .model_size import check_width
from .nets.combo import ComboUNet
from .nets.unet import FieldUNet
from .records import ModelConfig, fits_type

__all__ = ["build_model", "available_models", "count_parameters", "width_for_params",
           "DEFAULTS", "MODELS"]

#: every build_model option and its default (defined once, in :class:`ModelConfig`)
DEFAULTS: dict[str, Any] = ModelConfig.defaults()


@dataclass(frozen=True)
class ModelEntry:
    """One row of the registry: the convolution (``module:Class`` under
    ``surrogate.layers``, imported on demand), the groups it is exact for, the
    options passed to the convolution, the network (``"unet"``: one
    :class:`FieldUNet`; ``"combo"``: :class:`ComboUNet`), and the options that exist
    only with position-dependent relaxation (dropped from the config, and from the
    benchmark's cache key, while ``relax`` is ``"rotation"``)."""

    conv: str
    groups: tuple[str, ...]
    conv_options: tuple[str, ...] = ()
    net: str = "unet"
    relax_only: tuple[str, ...] = ()


#: the registry, one table: name -> convolution, allowed groups, extra options
MODELS: dict[str, ModelEntry] = {
    "unet": ModelEntry("group_conv:GroupConv", ("trivial",)),
    "gconv_unet": ModelEntry("group_conv:GroupConv", ("C4", "D4")),
    "relaxed_gconv_unet": ModelEntry("relaxed_group_conv:RelaxedGroupConv", ("C4", "D4"),
                                     ("num_banks", "relax", "grid")),
    "steer_unet": ModelEntry("steerable:SteerableConv", ("C4", "D4", "C8")),
    "relaxed_steer_unet": ModelEntry("relaxed_steerable:RelaxedSteerableConv",
                                     ("C4", "D4", "C8"),
                                     ("relax_scale", "relax", "num_banks", "grid"),
                                     relax_only=("relax", "num_banks", "grid")),
    "rpp_unet": ModelEntry("rpp_conv:RPPConv", ("C4", "D4"), ("rpp_ratio",)),
    "relaxed_conv_unet": ModelEntry("relaxed_translation_conv:RelaxedTranslationConv",
                                    ("trivial",), ("num_banks", "grid")),
    "combo_unet": ModelEntry("group_conv:GroupConv", ("C4", "D4"), net="combo"),
    "clc_unet": ModelEntry("locally_connected_conv:LocallyConnectedConv", ("trivial",),
                           ("grid",)),
}
#: options that only some models take (the others ignore them)
_MODEL_ONLY = {k for e in MODELS.values() for k in e.conv_options}


def available_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return list(MODELS)


def _conv_class(name: str) -> type[nn.Module]:
    module, cls = MODELS[name].conv.split(":")
    try:
        return getattr(importlib.import_module(f"surrogate.layers.{module}"), cls)
    except ImportError as e:  # the steerable layers need escnn
        raise ImportError(f"model {name!r} needs the layers of surrogate.layers.{module}: "
                          f"{e}") from e


_WANTED = {"bool": "true or false", "int": "an integer", "float": "a number",
           "str": "a string"}


def _resolve(name: str, config: dict[str, Any]) -> dict[str, Any]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {available_models()}")
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for build_model; valid options: "
                         f"{sorted(DEFAULTS)}")
    cfg = {**DEFAULTS, **config}
    for k, v in config.items():  # so that residual="False" (truthy) or hidden=2.5 is refused
        kind = type(DEFAULTS[k]).__name__
        if kind in _WANTED and not fits_type(kind, v):
            raise ValueError(f"option {k} must be {_WANTED[kind]}, got {v!r}")
    groups = MODELS[name].groups
    if groups == ("trivial",):  # plain models
        cfg["group"] = "trivial"
    else:
        get_group(cfg["group"])  # clear error for an unknown group name
        if cfg["group"] not in groups:
            raise ValueError(f"group {cfg['group']!r} is not available for {name!r}; "
                             f"choose one of {list(groups)}"
                             + (" (C8 is not exact on a pixel grid for group convolutions;"
                                " use a steer model)" if cfg["group"] == "C8" else ""))
    for k in _MODEL_ONLY - set(MODELS[name].conv_options):
        cfg.pop(k)
    if cfg.get("relax") == "rotation":  # the default relaxed conv: config as before the option
        for k in ("relax", "grid", *MODELS[name].relax_only):
            cfg.pop(k, None)
    return cfg


def needs_grid(name: str, config: dict[str, Any]) -> bool:
    """Whether model ``name`` with ``config`` has position-dependent weights (and so
    needs ``grid``: ``relaxed_conv_unet``, or ``relax`` translation / both)."""
    options = MODELS[name].conv_options if name in MODELS else ()
    if "relax" in options:
        return config.get("relax", "rotation") != "rotation"
    return "grid" in options


def build_model(name: str, **config: Any) -> FieldUNet | ComboUNet:
    """Build surrogate ``name`` (see :func:`available_models`); options as in
    :data:`DEFAULTS`. The model maps ``(B, T_in, C, H, W) -> (B, C, H, W)`` (plus
    ``aux (B, C_aux, H, W)`` with ``breaking_inputs``)."""
    cfg = _resolve(name, config)
    check_width(lambda h: build_model(name, **{**config, "hidden": h}), cfg["hidden"],
                f"model {name!r}")
    exported = bool(cfg.pop("exported"))
    conv_kwargs = {k: cfg.pop(k) for k in MODELS[name].conv_options if k in cfg}
    if MODELS[name].net == "combo":
        model = ComboUNet(name=name, **cfg)
    else:
        model = FieldUNet(_conv_class(name), name=name, conv_kwargs=conv_kwargs, **cfg)
    model.config = {**model.config, "exported": exported}
    return model.export() if exported else model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (distinct) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def width_for_params(name: str, target_params: int, **config: Any) -> int:
    """The ``hidden`` width (>= 1) whose parameter count is closest to ``target_params``
    for model ``name`` with the other options in ``config``.

    Every width is proportional to ``hidden``, so the count is a quadratic in ``hidden``;
    it is fitted exactly from three small models and the best candidates are checked."""
    config = {k: v for k, v in config.items() if k != "hidden"}
    if target_params < 1:
        raise ValueError(f"target_params must be positive, got {target_params}")

    def count(h: int) -> int:
        return count_parameters(build_model(name, hidden=h, **config))

    c1, c2, c3 = count(1), count(2), count(3)
    a = (c3 - 2 * c2 + c1) / 2
    b = c2 - c1 - 3 * a
    c = c1 - a - b
    if a > 0:
        disc = b * b - 4 * a * (c - target_params)
        h = (-b + math.sqrt(max(disc, 0.0))) / (2 * a)
    else:
        h = (target_params - c) / b if b > 0 else 1.0
    candidates = {max(1, math.floor(h)), max(1, math.ceil(h))}
    known = {1: c1, 2: c2, 3: c3}
    return min(candidates, key=lambda k: (abs((known.get(k) or count(k)) - target_params), k))
