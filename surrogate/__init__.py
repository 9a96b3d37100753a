"""relaxflow surrogates: plain, group-equivariant and relaxed-equivariant U-Nets.

``build_model`` makes a network, ``save``/``load`` write and read self-describing
checkpoints, and ``load(...).forecast(history, steps)`` rolls a trained model out.
``build_model(..., breaking_inputs=["cause", "frame"])`` feeds symmetry-breaking fields
next to the state (see :mod:`surrogate.breaking`).
"""

from .breaking import BREAKING_INPUTS, CAUSE_VARS, aux_layout, data_layout
from .checkpoint import CheckpointError, load_model, read_checkpoint, save
from .devices import DEVICE_NAMES, DeviceError, resolve_device
from .export import export
from .forecast import ForecastError, NonFiniteForecastWarning, Surrogate, load
from .groups import get_group
from .normalization import Normalization
from .registry import available_models, build_model, count_parameters, width_for_params
from .symmetry import FieldLayout, transform_fields

__all__ = ["build_model", "available_models", "count_parameters", "width_for_params",
           "export", "FieldLayout", "get_group", "transform_fields", "Normalization",
           "save", "load", "load_model", "read_checkpoint", "CheckpointError",
           "Surrogate", "ForecastError", "NonFiniteForecastWarning", "BREAKING_INPUTS",
           "CAUSE_VARS", "aux_layout", "data_layout", "DEVICE_NAMES", "DeviceError",
           "resolve_device"]
