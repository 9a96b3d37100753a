"""The paper's data equivariance error for the rotation family of scenarios."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .dataset import DatasetError
from .symmetry import transform_fields

__all__ = ["data_equivariance_error"]


def _error(ds: xr.Dataset, variables) -> float:
    wall = ds["wall"].values.astype(int)
    level = ds["level"].values.astype(float) if "level" in ds.coords else np.full(len(wall), np.nan)
    level = np.where(np.isnan(level), -1.0, level)
    warm = ds["warmup_steps"].values if "warmup_steps" in ds.coords else np.zeros(len(wall))
    key = list(zip(ds["magnitude_index"].values.astype(int), level, warm))   # pairs share it
    needed = ("u", "v", "density") if "density" in variables else ("u", "v")
    arrs = {k: ds[k].values for k in needed if k in ds.variables}
    total, count = 0.0, 0
    for a in range(len(wall)):
        for b in range(len(wall)):
            if wall[a] < 0 or wall[b] < 0 or wall[b] == wall[a] or key[b] != key[a]:
                continue
            k = (wall[b] - wall[a]) % 4          # wall b = wall a rotated by k CCW quarter turns
            rotated = dict(zip(needed, transform_fields(*(arrs[n][a] for n in needed), k=k)))
            for name in variables:
                total += float(np.abs(rotated[name] - arrs[name][b]).mean())
                count += 1
    if count == 0:
        raise DatasetError("data_equivariance_error: no pair of simulations from different walls "
                           "with the same magnitude_index (and level) in the dataset")
    return total / count


def data_equivariance_error(ds: xr.Dataset, variables=("u", "v"), by: str | None = None):
    """Mean absolute difference between each run and the 90-degree rotations of the runs
    from the other walls with the same ``magnitude_index`` (and ``level`` and
    ``warmup_steps``, if present, so frames compare the same physical times):
    for runs ``a`` (wall ``k_a``) and ``b`` (wall ``k_b``), rotate ``a`` by
    ``k_b - k_a`` counter-clockwise quarter turns (:func:`simulate.symmetry.transform_fields`,
    grid and vector components) and average ``|g a - b|`` over frames, cells, the chosen
    ``variables`` and all ordered pairs. 0 for a perfectly C4-symmetric dataset.

    Needs the per-sim coordinates ``wall`` and ``magnitude_index`` and a square grid.
    ``by="level"`` returns a dict ``{level: error}``."""
    if missing := [c for c in ("wall", "magnitude_index") if c not in ds.coords]:
        raise DatasetError(f"data_equivariance_error needs the scenario metadata coordinates "
                           f"{', '.join(missing)} (rotation-family datasets: rotation, symmetric, breaking_sweep)")
    if ds.sizes["x"] != ds.sizes["y"]:
        raise DatasetError(f"data_equivariance_error needs a square grid, got {ds.sizes['y']}x{ds.sizes['x']}")
    bad = [v for v in variables if v not in ("u", "v", "density")]
    if bad or not variables:
        raise ValueError(f"variables must be a non-empty subset of u, v, density, got {variables}")
    if by is None:
        return _error(ds, tuple(variables))
    if by not in ds.coords:
        raise DatasetError("data_equivariance_error: no per-simulation coordinate "
                           f"{by!r} to group by")
    vals = ds[by].values
    return {k: _error(ds.isel(sim=np.flatnonzero(vals == k)), tuple(variables))
            for k in dict.fromkeys(vals.tolist())}
