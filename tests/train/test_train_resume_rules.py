"""What ``--resume`` may and may not change, and resume states that cannot be used: every
refusal is one line, before any epoch runs."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from surrogate.checkpoint import CheckpointError, _digest, read_checkpoint
from train import ConfigError, fit
from train.cli import main as train_main

from train_fixtures import make_dataset, tiny_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_epochs(tiny_nc, tmp_path_factory):
    """A finished 2-epoch run (cosine schedule) to resume from; tests copy it."""
    out = tmp_path_factory.mktemp("resume") / "run"
    fit(tiny_config(tiny_nc, out, epochs=2))
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_resume_on_other_data_is_refused(tiny_nc, two_epochs, tmp_path):
    run = _copy(two_epochs, tmp_path / "run")
    before = (run / "last.pt").read_bytes()
    other = make_dataset(tmp_path / "other.nc", seed=3)          # same shape, other values
    with xr.open_dataset(tiny_nc) as ds:
        ds.load().astype("float64").to_netcdf(tmp_path / "f64.nc")  # a float64 copy
    renamed = tmp_path / "renamed.nc"
    with xr.open_dataset(tiny_nc) as ds:
        ds.load().assign_attrs(scenario="other-scenario").to_netcdf(renamed)
    for data, what in ((other, "values"), (tmp_path / "f64.nc", "float64"),
                       (renamed, "scenario")):
        with pytest.raises(ConfigError, match="other data") as e:
            fit(tiny_config(data, run, epochs=2, resume=True))
        assert "\n" not in str(e.value) and what in str(e.value), str(e.value)
    assert (run / "last.pt").read_bytes() == before
    # the same file under another path is the same data
    os.link(tiny_nc, tmp_path / "moved.nc")
    fit(tiny_config(tmp_path / "moved.nc", run, epochs=2, resume=True))


def test_resume_refuses_what_it_cannot_change_and_names_what_it_can(tiny_nc, two_epochs,
                                                                     tmp_path):
    run = _copy(two_epochs, tmp_path / "run")
    for change, field in ((dict(lr=0.5), "lr"), (dict(batch_size=4), "batch_size"),
                          (dict(seed=7), "seed"), (dict(noise=0.1), "noise")):
        with pytest.raises(ConfigError, match=f"cannot resume.*{field}") as e:
            fit(tiny_config(tiny_nc, run, epochs=2, resume=True, **change))
        assert "may change only" in str(e.value) and "\n" not in str(e.value)
    # the cosine schedule spans the epochs: more epochs is refused, naming the way out
    with pytest.raises(ConfigError, match="epochs.*cosine"):
        fit(tiny_config(tiny_nc, run, epochs=3, resume=True))
    # the step schedule may be extended, and how a run executes may change: the resumed
    # run records what it used
    step = tmp_path / "step"
    fit(tiny_config(tiny_nc, step, epochs=1, schedule="step"))
    fit(tiny_config(tiny_nc, step, epochs=2, schedule="step", resume=True, patience=3,
                    num_workers=1))
    tc = read_checkpoint(step / "last.pt")["metadata"]["train_config"]
    assert (tc["epochs"], tc["patience"], tc["num_workers"], tc["lr"]) == (2, 3, 1, 3e-3)
    with pytest.raises(ConfigError, match="trained 2 epochs"):
        fit(tiny_config(tiny_nc, step, epochs=1, schedule="step", resume=True))


def test_cli_resume_with_new_lr_is_one_line(tiny_nc, tmp_path, capsys):
    args = ["--data", str(tiny_nc), "--out", str(tmp_path / "run"), "--model", "unet",
            "--hidden", "4", "--depth", "2", "--T-in", "2", "--K", "2", "--device", "cpu",
            "--no-progress", "--epochs", "1"]
    assert train_main(args) == 0
    capsys.readouterr()
    assert train_main([*args, "--resume", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lr 0.5 differs" in err, err


def _rewrite(path: Path, edit) -> None:
    """Edit a checkpoint's raw payload and give it a valid digest again."""
    raw = torch.load(path, weights_only=True)
    edit(raw)
    raw["digest"] = _digest(raw)
    torch.save(raw, path)


@pytest.mark.parametrize("case", ["best_copy", "epoch_str", "no_param_groups", "short_rng",
                                  "bad_python_rng"])
def test_unusable_resume_state_is_one_checkpoint_error(tiny_nc, two_epochs, tmp_path, case):
    run = _copy(two_epochs, tmp_path / "run")
    last = run / "last.pt"

    def edit(raw):
        ts = raw["training_state"]
        if case == "epoch_str":
            ts["epoch"] = "x"
        elif case == "no_param_groups":
            ts["optimizer"]["param_groups"] = []
        elif case == "short_rng":
            ts["rng"]["torch"] = torch.zeros(3, dtype=torch.uint8)
        elif case == "bad_python_rng":
            ts["rng"]["python"] = [3, [1, 2], None]

    if case == "best_copy":
        last.write_bytes((run / "best.pt").read_bytes())
    else:
        _rewrite(last, edit)
    before = last.read_bytes()
    with pytest.raises(CheckpointError, match="resume state") as e:
        fit(tiny_config(tiny_nc, run, epochs=2, resume=True))
    assert "\n" not in str(e.value) and str(last) in str(e.value)
    assert last.read_bytes() == before


def _run_in_process(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train", *args], cwd=ROOT, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"),
                          capture_output=True, timeout=600)


def test_resume_with_a_worker_is_bit_identical_across_processes(tiny_nc, tmp_path):
    """With ``--num-workers 1`` a run resumed in a new process after epoch 1 of 3 (step
    schedule) ends with the weights, optimiser and RNG state of the straight run."""
    common = ["--data", str(tiny_nc), "--model", "unet", "--hidden", "4", "--depth", "2",
              "--T-in", "2", "--K", "2", "--device", "cpu", "--no-progress", "--num-workers",
              "1", "--noise", "0.3", "--schedule", "step", "--patience", "none"]
    a = _run_in_process([*common, "--out", str(tmp_path / "a"), "--epochs", "3"])
    assert a.returncode == 0, a.stderr
    b1 = _run_in_process([*common, "--out", str(tmp_path / "b"), "--epochs", "1"])
    b2 = _run_in_process([*common, "--out", str(tmp_path / "b"), "--epochs", "3", "--resume"])
    assert b1.returncode == 0 and b2.returncode == 0, b1.stderr + b2.stderr
    sa, sb = (read_checkpoint(tmp_path / d / "last.pt") for d in "ab")
    for k, v in sa["state_dict"].items():
        assert torch.equal(sb["state_dict"][k], v), k
    ta, tb = sa["training_state"], sb["training_state"]
    assert torch.equal(ta["rng"]["torch"], tb["rng"]["torch"])
    assert ta["rng"]["python"] == tb["rng"]["python"]
    for (ka, va), (kb, vb) in zip(ta["optimizer"]["state"].items(),
                                  tb["optimizer"]["state"].items()):
        assert torch.equal(va["exp_avg"], vb["exp_avg"])


def test_out_under_a_file_or_unwritable_is_refused_before_the_data(tiny_nc, two_epochs,
                                                                   tmp_path, capsys,
                                                                   monkeypatch):
    """train, evaluate and generate: an output under a file, or in a folder nothing can
    be written to, is one line naming why, before any data are read."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    import train.loop as L
    opened = []
    for reader in ("open_header", "read_fields"):  # the Trainer's two data reads
        monkeypatch.setattr(L, reader, lambda *a, **k: opened.append(1))
    for out, why in ((afile / "sub", f"{afile} is a file, not a folder"),
                     (Path("/proc/relaxflow-run"), "/proc is not writable")):
        with pytest.raises(ConfigError, match=why) as e:
            fit(tiny_config(tiny_nc, out, epochs=1))
        assert "\n" not in str(e.value)
    assert not opened and afile.read_text() == "x"
    from evaluate.cli import main as evaluate_main
    from simulate.cli import main as simulate_main
    for argv, main in (
            (["--data", str(tiny_nc), "--out", str(afile / "sub"), "--epochs", "1"],
             train_main),
            (["-c", str(two_epochs / "best.pt"), "-d", str(tiny_nc), "--out",
              str(afile / "rep"), "-q", "--no-figures"], evaluate_main),
            (["generate", "symmetric", "--resolution", "16", "--steps", "4", "-o",
              str(afile / "x.nc"), "--no-progress"], simulate_main)):
        rc = main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and "not a folder" in err, err
    assert afile.read_text() == "x"
