"""Checkpoints written by an earlier relaxflow (stored in tests/surrogate/data, made at
commit 508ee12 with tests/evaluate/evaluate_helpers.make_checkpoint) load and forecast
exactly what they forecast then."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import surrogate

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("name", ["unet", "relaxed_gconv_unet"])
def test_an_old_checkpoint_forecasts_as_it_did(name):
    sur = surrogate.load(DATA / f"old_{name}.pt")
    with xr.open_dataset(DATA / "old_history.nc") as ds:
        hist = ds.load().isel(sim=[0, 1], time=slice(0, sur.T_in))
    pred = sur.forecast(hist, steps=3)
    got = np.stack([pred[v].values for v in ("u", "v", "density")])
    expected = np.load(DATA / "old_forecasts.npz")[name]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["unet", "relaxed_gconv_unet"])
def test_the_frozen_rollout_forecasts_as_the_exported_one(name):
    import torch
    sur = surrogate.load(DATA / f"old_{name}.pt")
    h = torch.rand(5, sur.T_in, 3, 8, 8)
    a = sur.rollout(h, 4, batch_size=2)                      # batches of 2, 2 and 1
    b = sur.rollout(h, 4, batch_size=2, frozen=True)
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    assert len(sur._frozen_cache[1]) == 2                    # one trace per batch shape
    sur.rollout(h, 4, batch_size=2, frozen=True)
    assert len(sur._frozen_cache[1]) == 2                    # reused


def test_the_frozen_rollout_follows_changed_weights():
    import torch
    sur = surrogate.load(DATA / "old_unet.pt")
    h = torch.rand(2, sur.T_in, 3, 8, 8)
    sur.rollout(h, 2, frozen=True)
    with torch.no_grad():
        next(sur.model.parameters()).add_(0.1)          # a new export, new traces
    torch.testing.assert_close(sur.rollout(h, 2, frozen=True), sur.rollout(h, 2))
