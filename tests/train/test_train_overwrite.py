"""No lost runs: --overwrite replaces the old run only once the new one has a
checkpoint; --out naming a file is refused; checkpoints can be signed."""

import json
import os

import pytest
import torch

from surrogate.checkpoint import CheckpointError, read_checkpoint
from train import ConfigError, TrainingError, fit
from train.cli import main as train_main

from train_fixtures import tiny_config


@pytest.fixture()
def old_run(tiny_nc, tmp_path):
    out = tmp_path / "run"
    fit(tiny_config(tiny_nc, out, epochs=1, schedule="step"))   # may be extended
    (out / "notes.txt").write_text("mine")
    return out, (out / "best.pt").read_bytes(), (out / "metrics.jsonl").read_text()


def test_overwrite_that_dies_keeps_the_old_run(tiny_nc, old_run):
    out, best, metrics = old_run
    with pytest.raises(TrainingError, match="non-finite"):
        fit(tiny_config(tiny_nc, out, overwrite=True, lr=1e30, grad_clip=None,
                        targets="state", persistence_init=False))
    assert (out / "best.pt").read_bytes() == best
    assert (out / "metrics.jsonl").read_text() == metrics
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"]  # no staging left


def test_overwrite_that_succeeds_replaces_the_run_and_keeps_other_files(tiny_nc, old_run):
    out, best, _ = old_run
    fit(tiny_config(tiny_nc, out, overwrite=True, epochs=2, seed=1))
    assert (out / "best.pt").read_bytes() != best
    assert read_checkpoint(out / "last.pt")["training_state"]["epoch"] == 2
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3  # epochs 0, 1, 2 of the new run only
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"]


def test_overwrite_killed_before_a_checkpoint_then_rerun(tiny_nc, old_run, monkeypatch):
    """A kill during epoch 1 (simulated: the staging folder stays) keeps the old run;
    the next --overwrite clears the stale staging folder and succeeds."""
    out, best, _ = old_run
    from train import loop

    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(loop, "train_step", boom)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(tiny_nc, out, overwrite=True))
    assert (out / "best.pt").read_bytes() == best
    stale = out.parent / ".run.overwrite"
    stale.mkdir(exist_ok=True)
    (stale / "metrics.jsonl").write_text("stale\n")
    monkeypatch.undo()
    fit(tiny_config(tiny_nc, out, overwrite=True, epochs=1))
    assert not stale.exists()
    assert "stale" not in (out / "metrics.jsonl").read_text()


def test_swap_interrupted_between_renames_is_completed(tiny_nc, old_run):
    """A kill between the two renames of the swap: the next start finishes it."""
    out, _, _ = old_run
    stage, old = out.parent / ".run.overwrite", out.parent / ".run.replaced"
    os.rename(out, stage)            # pretend: the new run (a copy) waits in staging
    old.mkdir()
    fit(tiny_config(tiny_nc, out, resume=True, epochs=2, schedule="step"))
    assert read_checkpoint(out / "last.pt")["training_state"]["epoch"] == 2
    assert not stage.exists() and not old.exists()


def test_out_naming_a_file_is_refused(tiny_nc, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        fit(tiny_config(tiny_nc, f))
    assert train_main(["--data", str(tiny_nc), "--out", str(f), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file" in err and len(err.splitlines()) == 1
    assert f.read_text() == "x"


def test_signed_training_and_resume(tiny_nc, tmp_path):
    out = tmp_path / "signed"
    fit(tiny_config(tiny_nc, out, epochs=1, schedule="step"), key="k")
    read_checkpoint(out / "best.pt", key="k")
    with pytest.raises(CheckpointError, match="signature"):
        fit(tiny_config(tiny_nc, out, epochs=2, resume=True, schedule="step"), key="other")
    fit(tiny_config(tiny_nc, out, epochs=2, resume=True, schedule="step"), key="k")
    assert read_checkpoint(out / "last.pt", key="k")["training_state"]["epoch"] == 2
    raw = torch.load(out / "last.pt", weights_only=True)
    raw["training_state"]["epoch"] = 1  # an edited resume state is refused
    torch.save(raw, out / "last.pt")
    with pytest.raises(CheckpointError, match="checksum"):
        fit(tiny_config(tiny_nc, out, epochs=3, resume=True, schedule="step"), key="k")


def test_a_run_folder_has_one_owner(tiny_nc, old_run, capsys):
    """A real race: run A (--overwrite, another process) owns the folder; run B into the
    same --out is refused with one line and exit 2 while A holds it, and A ends with its
    own run in place (its staging folder was not B's to remove)."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    out, _, _ = old_run
    root = Path(__file__).resolve().parents[2]
    common = ["--data", str(tiny_nc), "--out", str(out), "--model", "unet", "--hidden", "4",
              "--depth", "2", "--T-in", "2", "--K", "2", "--device", "cpu", "--no-progress",
              "--patience", "none"]
    a = subprocess.Popen([sys.executable, "-m", "train", *common, "--overwrite",
                          "--epochs", "6", "--seed", "1"], cwd=root, text=True,
                         env=dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lock, stage = out.parent / ".run.lock", out.parent / ".run.overwrite"
    deadline = time.time() + 120
    while a.poll() is None and time.time() < deadline:  # until A holds the folder
        try:
            if stage.exists() or lock.read_text().strip() == str(a.pid):
                break
        except OSError:  # no lock file yet
            pass
        time.sleep(0.01)
    assert a.poll() is None, "run A ended before run B could start"
    assert train_main(common + ["--epochs", "1", "--seed", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and "another process" in err
    stdout, stderr = a.communicate(timeout=300)
    assert a.returncode == 0, stderr
    assert stdout.strip() == str(out / "best.pt")
    last = read_checkpoint(out / "last.pt")
    assert last["training_state"]["epoch"] == 6
    assert last["metadata"]["train_config"]["seed"] == 1
    epochs = [json.loads(l)["epoch"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(7))  # A's epochs only, in order
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"]  # no staging, no lock
