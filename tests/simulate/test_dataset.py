import json
import os

import numpy as np
import pytest
import xarray as xr

import simulate
from simulate.dataset import build_dataset, write_dataset

DIMS = ("sim", "time", "y", "x")


def test_schema(rotation_data):
    spec, path, ds = rotation_data
    assert tuple(ds.u.dims) == DIMS and ds.sizes["sim"] == 8 and ds.sizes["time"] == 16
    for v in ("u", "v", "density"):
        assert ds[v].dtype == np.float32 and ds[v].attrs["units"] and ds[v].attrs["long_name"]
    for v in ("buoyancy_x", "buoyancy_y", "inflow_mask", "obstacle_mask", "open_mask"):
        assert ds[v].dims == ("sim", "y", "x")
    np.testing.assert_allclose(ds.x.values, np.arange(32) + 0.5)
    np.testing.assert_allclose(ds.time.values, np.arange(16) * 2.0)
    assert ds.attrs["dt"] == 2.0 and ds.attrs["save_every"] == 2 and ds.attrs["solver_dt"] == 1.0
    for c in simulate.SIM_COORDS:
        assert ds[c].dims == ("sim",)
    assert ds.heldout.dtype == bool
    assert ds.attrs["scenario"] == "rotation" and ds.attrs["resolution"] == 32
    assert simulate.ScenarioSpec.from_json(ds.attrs["spec"]).to_json() == spec.to_json()
    assert "rank_deficiency=0" in json.loads(ds.attrs["solver"])["pressure_solve"]
    for a in ("phiflow_version", "phiml_version", "relaxflow_version", "seed", "created", "relaxflow_conventions"):
        assert a in ds.attrs
    with xr.open_dataset(path, engine="netcdf4") as raw:
        enc = raw.u.encoding
    assert enc["zlib"] and enc["chunksizes"][:2] == (1, 8)


def _small(tmp_path):
    spec = simulate.preset("rotation", resolution=8, n_magnitudes=1, steps=4)
    rng = np.random.default_rng(0)
    fields = {k: rng.random((4, 5, 8, 8)).astype(np.float32) for k in ("u", "v", "density")}
    causes = {k: rng.random((4, 8, 8)) for k in simulate.CAUSE_VARS}
    return build_dataset(spec, [0, 1, 2, 3], fields, causes)


def test_round_trip_identical(tmp_path):
    ds = _small(tmp_path)
    p = write_dataset(ds, tmp_path / "a.nc")
    back = simulate.open_dataset(p, load=True)
    xr.testing.assert_identical(back, ds)
    assert back.attrs == ds.attrs


def test_generated_file_matches_the_simulation(rotation_data):
    from simulate.phiflow_step import simulate_batch
    spec, _, ds = rotation_data
    sims = list(range(8))      # the same batch as the generator's single part (reuses the compiled step)
    out = simulate_batch(spec, sims)
    for v in ("u", "v", "density"):
        np.testing.assert_array_equal(ds[v].sel(sim=sims).values, out[v])


def test_rejects_missing_variable_and_wrong_dims(tmp_path):
    ds = _small(tmp_path)
    write_dataset(ds.drop_vars("v"), tmp_path / "nov.nc")
    with pytest.raises(simulate.DatasetError, match=r"nov\.nc.*missing variable 'v'"):
        simulate.open_dataset(tmp_path / "nov.nc")
    bad = ds.assign(u=ds.u.transpose("sim", "time", "x", "y"))
    write_dataset(bad, tmp_path / "dims.nc")
    with pytest.raises(simulate.DatasetError, match=r"dims\.nc.*'u' has dims"):
        simulate.open_dataset(tmp_path / "dims.nc")
    write_dataset(ds.rename(sim="run"), tmp_path / "run.nc")
    with pytest.raises(simulate.DatasetError, match="missing dimension 'sim'"):
        simulate.open_dataset(tmp_path / "run.nc")


def test_rejects_truncated_and_corrupt_files(tmp_path):
    p = write_dataset(_small(tmp_path), tmp_path / "t.nc")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(simulate.DatasetError, match=r"t\.nc: corrupt or unreadable"):
        simulate.open_dataset(p, load=True)
    q = tmp_path / "text.nc"
    q.write_text("not a netcdf file")
    with pytest.raises(simulate.DatasetError, match="text.nc"):
        simulate.open_dataset(q)
    with pytest.raises(simulate.DatasetError, match="no such data file"):
        simulate.open_dataset(tmp_path / "missing.nc")


def test_nan_check(tmp_path):
    ds = _small(tmp_path)
    ds["u"][1, 2, 3, 4] = np.nan
    p = write_dataset(ds, tmp_path / "nan.nc")
    simulate.open_dataset(p).close()                  # optional check
    with pytest.raises(simulate.DatasetError, match="non-finite"):
        simulate.open_dataset(p, check_nans=True)


def test_foreign_data_without_metadata_is_accepted(tmp_path):
    ds = xr.Dataset({k: (DIMS, np.zeros((2, 3, 4, 4), np.float32)) for k in ("u", "v", "density")},
                    coords={"time": np.arange(3.0), "y": np.arange(4.0), "x": np.arange(4.0)})
    ds.to_netcdf(tmp_path / "f.nc", engine="netcdf4")
    back = simulate.open_dataset(tmp_path / "f.nc")
    assert back.sizes["sim"] == 2 and list(back.sim.values) == [0, 1]
    with pytest.raises(simulate.DatasetError, match="metadata"):
        simulate.open_dataset(tmp_path / "f.nc", require_metadata=True)


def test_open_several_files_joins_along_sim(tmp_path):
    ds = _small(tmp_path)
    a = write_dataset(ds.isel(sim=[2, 3]), tmp_path / "a.nc")
    b = write_dataset(ds.isel(sim=[0, 1]), tmp_path / "b.nc")
    both = simulate.open_dataset([a, b], load=True)
    assert list(both.sim.values) == [0, 1, 2, 3]
    np.testing.assert_array_equal(both.u.values, ds.u.values)
    with pytest.raises(simulate.DatasetError, match="share simulation"):
        simulate.open_dataset([a, a])
