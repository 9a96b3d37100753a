"""Typed configs and one schema validator for training data."""

import numpy as np
import pytest
import xarray as xr

from train import fit
from train.cli import main

from train_fixtures import make_dataset, tiny_config

BASE = ["--model", "unet", "--hidden", "4", "--depth", "2", "--model-opt", "norm_groups=1",
        "--T-in", "2", "--K", "2", "--epochs", "1", "--no-progress", "--device", "cpu"]


def _one_line_error(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("toml,match", [
    ('epochs = "one"', "epochs must be int"),
    ("batch_size = true", "batch_size must be int"),
    ('progress = "no"', "progress must be bool"),
    ('lr = "1e-3"', "lr must be a number"),
])
def test_typed_toml_mistakes(tiny_nc, tmp_path, capsys, toml, match):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'data = ["{tiny_nc}"]\nout = "{tmp_path / "run"}"\n{toml}\n')
    assert match in _one_line_error(capsys, ["--config", str(cfg)])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("toml,match", [
    ("heldout = 3.5", "split.heldout must be 'auto', 'none' or a list of sim indices "
                      "(integers), got 3.5"),
    ("heldout = [1.5]", "split.heldout must be 'auto', 'none' or a list of sim indices"),
    ('heldout = [1, "a"]', "split.heldout must be 'auto', 'none' or a list of sim indices"),
    ("heldout = [true]", "split.heldout must be 'auto', 'none' or a list of sim indices"),
    ('skip = "two"', "split.skip must be int, got 'two'"),
    ('train = [0, "a"]', "split.train must be a range [start, stop] of two numbers"),
])
def test_typed_split_mistakes(tiny_nc, tmp_path, capsys, toml, match):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'data = ["{tiny_nc}"]\nout = "{tmp_path / "run"}"\n[split]\n{toml}\n')
    assert match in _one_line_error(capsys, ["--config", str(cfg)])
    assert not (tmp_path / "run").exists()


def test_model_opt_booleans_are_parsed_and_typed(tiny_nc, tmp_path, capsys):
    out = tmp_path / "run"
    err = _one_line_error(capsys, ["--data", str(tiny_nc), "--out", str(out), *BASE,
                                   "--model-opt", "residual=maybe"])
    assert "residual must be true or false, got 'maybe'" in err
    # Python's spelling is read as the boolean it names (it used to be the string
    # "False", which is truthy: residual stayed on)
    rc = main(["--data", str(tiny_nc), "--out", str(out), *BASE, "--model-opt",
               "residual=False", "--targets", "state", "--no-persistence-init"])
    assert rc == 0, capsys.readouterr().err
    from surrogate.checkpoint import read_checkpoint
    assert read_checkpoint(out / "best.pt")["model_config"]["residual"] is False


def _drop_coords(src, dest, names):
    ds = xr.open_dataset(src).load()
    ds.drop_vars(names).to_netcdf(dest)
    return dest


def test_data_that_simulate_rejects_is_rejected(tiny_nc, tmp_path, capsys):
    no_coords = _drop_coords(tiny_nc, tmp_path / "nocoords.nc", ["time", "y", "x"])
    err = _one_line_error(capsys, ["--data", str(no_coords), "--out", str(tmp_path / "a"),
                                   *BASE])
    assert "missing coordinate 'time'" in err
    ds = xr.open_dataset(tiny_nc).load()
    ds = ds.assign_coords(time=ds["time"].values[::-1].copy())
    ds.to_netcdf(tmp_path / "backwards.nc")
    err = _one_line_error(capsys, ["--data", str(tmp_path / "backwards.nc"), "--out",
                                   str(tmp_path / "b"), *BASE])
    assert "coordinate 'time' is not strictly increasing" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_same_file_twice_is_refused(tiny_nc, tmp_path, capsys):
    err = _one_line_error(capsys, ["--data", str(tiny_nc), str(tiny_nc), "--out",
                                   str(tmp_path / "run"), *BASE])
    assert "the same file is given twice" in err


def test_zero_held_out_sims_warn(tmp_path):
    path = make_dataset(tmp_path / "noheld.nc", heldout=[])
    with pytest.warns(UserWarning, match="no simulation is held out"):
        fit(tiny_config(path, tmp_path / "run", epochs=1))
