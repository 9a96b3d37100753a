"""forecast() refuses malformed arguments with ForecastErrors that say what was
expected, instead of raw TypeErrors or a misleading channel count."""

import numpy as np
import pytest
import torch
import xarray as xr

from surrogate import build_model
from surrogate.checkpoint import save
from surrogate.forecast import ForecastError, load
from surrogate.normalization import Normalization
from surrogate.symmetry import FieldLayout

H, T_IN = 8, 2


@pytest.fixture(scope="module")
def sur(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("unet", T_in=T_IN, hidden=4, depth=2)
    norm = Normalization(FieldLayout(), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    path = save(model, tmp_path_factory.mktemp("f") / "m.pt", normalization=norm,
                metadata={"data": {"grid": {"ny": H, "nx": H}, "dt": 1.0}})
    return load(path)


def _ds(n_sim=2, n_time=3, extra=None):
    dims, shape = ("sim", "time", "y", "x"), (n_sim, n_time, H, H)
    if extra:
        dims, shape = dims + (extra,), shape + (2,)
    return xr.Dataset({c: (dims, np.zeros(shape, np.float32)) for c in ("u", "v", "density")},
                      coords={"time": np.arange(n_time, dtype=float)})


@pytest.mark.parametrize("steps", [2.5, "3", None, 0, -1, True])
def test_bad_steps(sur, steps):
    with pytest.raises(ForecastError, match="steps must be a positive integer"):
        sur.forecast(_ds(), steps=steps)


@pytest.mark.parametrize("batch_size", [0, 1.5, "8"])
def test_bad_batch_size(sur, batch_size):
    with pytest.raises(ForecastError, match="batch_size must be a positive integer"):
        sur.forecast(_ds(), steps=2, batch_size=batch_size)


@pytest.mark.parametrize("history,match", [
    (None, "must be an xarray Dataset/DataArray or an array"),
    ({"u": 1}, "must be an xarray Dataset/DataArray or an array"),
    ("data.nc", "must be an xarray Dataset/DataArray or an array"),
    ([[1, 2], [3]], "cannot be read as a numeric array"),
    ([1.0, 2.0], r"must be \(B, T, C, H, W\)"),
    (np.zeros((2, 4, H, H), np.float32), r"4-D history is read as \(T, C, H, W\).*axis 1 has 4"),
    (np.zeros((1, 5, H, H), np.float32), r"axis 1 has 5 entries.*pass \(B, T, C, H, W\)"),
    (np.zeros((0, 3, 3, H, H), np.float32), "no simulation"),
])
def test_bad_history(sur, history, match):
    with pytest.raises(ForecastError, match=match):
        sur.forecast(history, steps=2)


def test_dataset_extra_dim_and_empty(sur):
    with pytest.raises(ForecastError, match="extra dimension.*member"):
        sur.forecast(_ds(extra="member"), steps=2)
    with pytest.raises(ForecastError, match="history is empty"):
        sur.forecast(_ds(n_sim=0), steps=2)


def test_good_inputs_still_work(sur):
    assert sur.forecast(_ds(), steps=2).sizes == {"sim": 2, "time": 2, "y": H, "x": H}
    out = sur.forecast(np.zeros((3, 3, H, H), np.float32), steps=np.int64(1))
    assert out.sizes["sim"] == 1 and out.sizes["time"] == 1


def _varied(n_sim=2, n_time=3):
    """A history with distinct values everywhere and the schema's y/x coordinates."""
    ds = _ds(n_sim, n_time).assign_coords(y=np.arange(H) + 0.5, x=np.arange(H) + 0.5)
    rng = np.random.default_rng(0)
    return ds.map(lambda a: a + rng.normal(size=a.shape).astype(np.float32))


@pytest.mark.parametrize("coord", ["y", "x", "time"])
def test_a_descending_coordinate_is_refused_as_the_file_validator_does(sur, coord):
    ds = _varied()
    flipped = ds.isel({coord: slice(None, None, -1)})
    with pytest.raises(ForecastError, match=f"coordinate '{coord}' is not strictly "
                                            f"increasing.*sortby"):
        sur.forecast(flipped, steps=2)
    repeated = ds.assign_coords({coord: np.zeros(ds.sizes[coord])})
    with pytest.raises(ForecastError, match="not strictly increasing"):
        sur.forecast(repeated, steps=2)
    # sorted as the message says, it is the forecast of the original history
    xr.testing.assert_identical(sur.forecast(flipped.sortby(coord), steps=2),
                                sur.forecast(ds, steps=2))


def test_a_non_finite_forecast_warns_once_in_one_line(sur):
    import warnings

    from surrogate.forecast import NonFiniteForecastWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a finite forecast warns nothing
        sur.forecast(_varied(), steps=2)
    huge = _varied() * 1e29  # finite float32 data, far outside what the model saw
    with pytest.warns(NonFiniteForecastWarning, match="NaN or Inf in 2 of 2") as w:
        out = sur.forecast(huge, steps=2)
    assert not np.isfinite(out["u"].values).all()
    assert len(w) == 1 and w[0].filename == __file__ and "\n" not in str(w[0].message)
    x = torch.as_tensor(np.stack([huge[c].values for c in ("u", "v", "density")], axis=2))
    with pytest.warns(NonFiniteForecastWarning, match="diverged") as w:
        sur.rollout(x, 2)
    assert len(w) == 1 and w[0].filename == __file__
