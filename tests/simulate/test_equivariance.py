import numpy as np
import pytest
import xarray as xr

import simulate
from simulate.symmetry import transform_fields


def test_symmetric_runs_are_rotations_of_each_other(symmetric_data):
    _, _, ds = symmetric_data
    a = ds.isel(sim=0)
    scale = float(np.abs(ds.v).max())
    for k in (1, 2, 3):
        b = ds.isel(sim=k)
        assert int(b.wall) == k and int(b.magnitude_index) == int(a.magnitude_index)
        u, v, d = transform_fields(a.u.values, a.v.values, a.density.values, k=k)
        assert np.abs(u - b.u.values).max() < 1e-3 * scale
        assert np.abs(v - b.v.values).max() < 1e-3 * scale


def test_symmetric_error_far_below_rotation(symmetric_data, rotation_data):
    sym = simulate.data_equivariance_error(symmetric_data[2])
    rot = simulate.data_equivariance_error(rotation_data[2])
    assert rot > 1e-3
    assert sym < 1e-2 * rot


def test_breaking_sweep_error_grows_with_level(sweep_data):
    _, _, ds = sweep_data
    errs = simulate.data_equivariance_error(ds, by="level")
    levels = sorted(errs)
    assert levels == [0.0, 0.5, 1.0]
    values = [errs[lv] for lv in levels]
    assert all(b > a for a, b in zip(values, values[1:])), errs
    assert values[0] < 1e-2 * values[-1]


def test_error_needs_metadata():
    ds = xr.Dataset({k: (("sim", "time", "y", "x"), np.zeros((2, 3, 4, 4), np.float32)) for k in ("u", "v", "density")},
                    coords={"time": np.arange(3.0), "y": np.arange(4.0), "x": np.arange(4.0)})
    with pytest.raises(simulate.DatasetError, match="wall"):
        simulate.data_equivariance_error(ds)
