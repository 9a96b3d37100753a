"""A full disk ends training in one line and leaves no partial checkpoint; a run clears
what killed runs into its folder left; huge (finite float32) data keep a finite valid
RMSE."""

import json

import numpy as np
import pytest
import torch
import xarray as xr

import surrogate.diskfull as dfull
from train import fit
from train.cli import main as train_main

from train_fixtures import make_dataset, tiny_config

TORCH_SHORT_WRITE = ("[enforce fail at inline_container.cc:672] . unexpected pos 4864 vs "
                     "4755")


def _argv(data, out):
    return ["--data", str(data), "--out", str(out), "--model", "unet", "--hidden", "4",
            "--depth", "2", "--T-in", "2", "--K", "2", "--epochs", "2", "--no-progress",
            "--device", "cpu"]


@pytest.mark.parametrize("error,at", [(RuntimeError(TORCH_SHORT_WRITE), "best.pt"),
                                      (OSError(28, "No space left on device"), "last.pt")])
def test_a_full_disk_is_one_line_and_leaves_no_partial_checkpoint(
        tiny_nc, tmp_path, monkeypatch, capsys, error, at):
    out = tmp_path / "run"
    real, calls = torch.save, []

    def full(obj, f, *a, **k):  # epoch 1 writes best.pt, then last.pt
        calls.append(1)
        if len(calls) == ("best.pt", "last.pt").index(at) + 1:
            f.write(b"\0" * 4096)  # what reached the disk
            raise error
        return real(obj, f, *a, **k)
    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(dfull, "free_bytes", lambda p: 0)
    assert train_main(_argv(tiny_nc, out)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot write {out / at}: no space left on device" in err[0]
    # the folder holds what was complete, and no partial file
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["metrics.jsonl"] + (["best.pt"] if at == "last.pt" else []))
    assert "--overwrite" in err[0] if at == "last.pt" else "same command" in err[0]
    monkeypatch.undo()
    again = ["--overwrite"] if at == "last.pt" else []
    assert train_main(_argv(tiny_nc, out) + again) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl"]


def test_a_run_clears_what_killed_runs_into_its_folder_left(tiny_nc, tmp_path):
    out = tmp_path / "run"
    fit(tiny_config(tiny_nc, out, epochs=1, schedule="step"))   # may be extended
    mine = [out / ".best.pt.a1b2c3d4.tmp", out / ".last.pt.zz_9abcd.tmp",
            out / "metrics.tmp"]
    stage = tmp_path / ".run.overwrite"  # an overwrite killed before its first checkpoint
    others = [out / "notes.txt", out / ".notes.txt.a1b2c3d4.tmp",
              tmp_path / ".other.overwrite" / "best.pt"]
    stage.mkdir()
    (stage / ".best.pt.a1b2c3d4.tmp").write_bytes(b"\0" * 100)
    for p in mine + others:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"\0" * 100)
    fit(tiny_config(tiny_nc, out, epochs=2, resume=True, schedule="step"))
    assert not [p for p in mine if p.exists()] and not stage.exists()
    assert all(p.exists() for p in others)


def test_huge_finite_data_keep_a_finite_valid_rmse(tmp_path):
    """Fields of order 1e29 (finite in float32; their squares are not): the valid RMSE is
    computed in float64, finite from epoch 0 and of the data's order."""
    path = make_dataset(tmp_path / "tiny.nc", n_sims=5, n_time=12)
    with xr.open_dataset(path) as ds:
        big = ds.load()
    for v in ("u", "v", "density"):
        big[v] = big[v] * np.float32(1e29)
    big.to_netcdf(tmp_path / "big.nc")
    out = tmp_path / "run"
    fit(tiny_config(tmp_path / "big.nc", out, epochs=1))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rmse = [r["valid_rmse"] for r in rows]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert all(np.isfinite(rmse)) and all(1e26 < r < 1e30 for r in rmse), rmse


def test_a_non_finite_baseline_stops_before_the_first_epoch(tiny_nc, tmp_path,
                                                            monkeypatch):
    """When the untrained model's valid RMSE is already non-finite no epoch can mend it:
    the run stops at once instead of training an epoch first."""
    from train import TrainingError
    from train import loop

    inf = float("inf")
    monkeypatch.setattr(loop.Trainer, "validate", lambda self: {
        "valid_loss": inf, "valid_rmse": inf, "valid_rmse_per_channel": {}})
    monkeypatch.setattr(loop.Trainer, "train_one_epoch", lambda self, epoch: pytest.fail(
        "an epoch was trained"))
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="untrained model.*training not started"):
        fit(tiny_config(tiny_nc, out, epochs=2))
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [0]
