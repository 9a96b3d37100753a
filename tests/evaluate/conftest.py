"""Fixtures for the evaluate tests (helpers in evaluate_helpers.py)."""

from __future__ import annotations

import pytest

from evaluate_helpers import make_checkpoint, make_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaldata")
    ds = make_dataset()
    path = d / "data.nc"
    ds.to_netcdf(path)
    return path, ds


@pytest.fixture(scope="session")
def tiny_checkpoints(tiny_data, tmp_path_factory):
    path, ds = tiny_data
    d = tmp_path_factory.mktemp("evalruns")
    unet = make_checkpoint(d / "unet" / "best.pt", "unet", ds, seed=0)
    rg = make_checkpoint(d / "rg" / "best.pt", "relaxed_gconv_unet", ds, seed=1,
                         relax=0.2)
    return {"unet": unet, "relaxed_gconv_unet": rg}
