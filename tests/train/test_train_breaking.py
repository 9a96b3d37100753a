"""Training with symmetry-breaking inputs: cause fields from the data, guards, CLI flag."""

import numpy as np
import pytest
import torch

from surrogate import load
from surrogate.breaking import CAUSE_VARS
from surrogate.checkpoint import read_checkpoint
from train import DataError, fit
from train.cli import args_to_config, build_parser
from train.data import open_data
from train.windows import WindowDataset

from train_fixtures import make_dataset, recompute_valid_rmse, tiny_config


@pytest.fixture(scope="module")
def cause_nc(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("cause") / "cause.nc", cause=True)


def test_windows_carry_the_sims_cause_fields(cause_nc):
    data = open_data([cause_nc], aux_channels=CAUSE_VARS)
    assert data.aux.shape == (5, 5, 16, 16) and data.aux_channels == CAUSE_VARS
    x, y, aux = WindowDataset(data, [(3, 4)], 2, 2)[0]
    assert x.shape == (2, 3, 16, 16) and y.shape == (2, 3, 16, 16)
    torch.testing.assert_close(aux, torch.from_numpy(data.aux[3]))
    assert len(WindowDataset(open_data([cause_nc]), [(3, 4)], 2, 2)[0]) == 2


def test_train_with_cause_records_it_and_reproduces_valid_rmse(cause_nc, tmp_path):
    cfg = tiny_config(cause_nc, tmp_path, model="gconv_unet", epochs=2,
                      model_config={"hidden": 2, "depth": 2, "norm_groups": 1,
                                    "breaking_inputs": ["frame", "cause"]})
    best = fit(cfg)
    ckpt = read_checkpoint(best)
    meta = ckpt["metadata"]
    assert ckpt["model_config"]["breaking_inputs"] == ["frame", "cause"]
    assert meta["breaking_inputs"] == ["frame", "cause"]
    assert meta["aux_channels"] == list(CAUSE_VARS)
    aux_norm = ckpt["normalization"].aux
    assert aux_norm.layout.channels == CAUSE_VARS
    assert aux_norm.scale[0] == aux_norm.scale[1] == pytest.approx(0.05 / np.sqrt(2), rel=1e-4)
    assert aux_norm.scale[2:] == (1.0, 1.0, 1.0) and set(aux_norm.shift) == {0.0}

    assert recompute_valid_rmse(ckpt) == pytest.approx(meta["valid_rmse"], rel=1e-5)

    # the forecast API finds the cause fields in the dataset
    import xarray as xr
    with xr.open_dataset(cause_nc) as ds:
        pred = load(best).forecast(ds.isel(time=slice(0, 2)), steps=2)
    assert pred["u"].shape == (5, 2, 16, 16) and np.isfinite(pred["u"].values).all()


def test_dataset_without_cause_fields_is_refused(tiny_nc, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(tiny_nc, out, model="gconv_unet",
                      model_config={"hidden": 2, "depth": 2, "norm_groups": 1,
                                    "breaking_inputs": ["cause"]})
    with pytest.raises(DataError, match=r"missing variable\(s\) \['buoyancy_x', 'buoyancy_y', "
                                        r"'inflow_mask', 'obstacle_mask', 'open_mask'\] that "
                                        r"the breaking input 'cause'"):
        fit(cfg)
    assert not out.exists() or not any(out.iterdir())
    # frame and coords need nothing from the data
    fit(tiny_config(tiny_nc, tmp_path / "frame", epochs=1,
                    model_config={"hidden": 2, "depth": 2, "norm_groups": 1,
                                  "breaking_inputs": ["frame", "coords"]}))


def test_cli_flag():
    p = build_parser()
    cfg = args_to_config(p.parse_args(["--data", "a.nc", "--breaking-inputs", "cause,frame"]))
    assert cfg.model_config["breaking_inputs"] == ["cause", "frame"]
    cfg = args_to_config(p.parse_args(["--data", "a.nc", "--breaking-inputs", "none"]))
    assert cfg.model_config["breaking_inputs"] == []
