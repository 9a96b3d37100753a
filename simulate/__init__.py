"""relaxflow.simulate: PhiFlow smoke-plume datasets with controlled symmetry breaking.

Public API::

    spec = preset("rotation", resolution=32, n_magnitudes=2, steps=40)   # or load_spec("my.toml")
    summary = generate(spec, "rotation.nc", workers=1, save_every=...)    # see generate()
    ds = open_dataset("rotation.nc")                                        # validated xarray.Dataset
    err = data_equivariance_error(ds)

PhiFlow is imported only when simulating, so reading datasets stays light.
"""

from .dataset import (CAUSE_VARS, FIELD_VARS, SIM_COORDS, DatasetError, holds_spec, merge,
                      open_dataset, spec_hash, validate_dataset)
from .equivariance import data_equivariance_error
from .generate import GenerateError, generate
from .phiflow_step import SimulationError
from .presets import available_scenarios, preset, preset_parameters
from .spec import WALLS, ScenarioSpec, SimSpec, SolverSpec, SpecError
from .spec_toml import load_spec, spec_to_toml


__all__ = ["open_dataset", "validate_dataset", "DatasetError", "data_equivariance_error", "ScenarioSpec",
           "SimSpec", "SolverSpec", "SpecError", "GenerateError", "SimulationError", "preset",
           "available_scenarios", "preset_parameters", "load_spec", "spec_to_toml", "generate", "merge",
           "WALLS", "FIELD_VARS", "CAUSE_VARS", "SIM_COORDS", "spec_hash", "holds_spec"]
