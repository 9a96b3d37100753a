"""evaluate never loses or half-writes a report, and names non-finite data."""

import json

import numpy as np
import pytest

import evaluate
from evaluate.cli import main

from evaluate_helpers import make_dataset

RUN = dict(splits="test-domain", steps=2, device="cpu", stride=8, figures=False)


def test_non_empty_out_is_refused_without_overwrite(tiny_data, tiny_checkpoints, tmp_path,
                                                     capsys):
    data, _ = tiny_data
    out = tmp_path / "rep"
    out.mkdir()
    (out / "old.md").write_text("keep")
    with pytest.raises(evaluate.EvaluationError, match="not empty; pass --overwrite"):
        evaluate.run(tiny_checkpoints["unet"], data, out=out, **RUN)
    rc = main(["-c", str(tiny_checkpoints["unet"]), "-d", str(data), "-s", "test-domain",
               "--steps", "2", "--out", str(out), "--no-figures", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "old.md").read_text() == "keep"
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(evaluate.EvaluationError, match="is a file"):
        evaluate.run(tiny_checkpoints["unet"], data, out=f, **RUN)
    # an empty folder is fine; --overwrite writes the report and keeps other files
    (tmp_path / "empty").mkdir()
    evaluate.run(tiny_checkpoints["unet"], data, out=tmp_path / "empty", **RUN)
    evaluate.run(tiny_checkpoints["unet"], data, out=out, overwrite=True, **RUN)
    assert (out / "summary.md").is_file() and (out / "old.md").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file", "rep"]


def test_failed_overwrite_keeps_the_old_report(tiny_data, tiny_checkpoints, tmp_path,
                                               monkeypatch):
    data, _ = tiny_data
    out = evaluate.run(tiny_checkpoints["unet"], data, out=tmp_path / "rep", **RUN)
    before = (out / "summary.json").read_text()
    from evaluate import report

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(report, "write_summary", boom)  # dies after metrics.csv
    with pytest.raises(OSError, match="disk full"):
        evaluate.run(tiny_checkpoints["unet"], data, out=out, overwrite=True, **RUN)
    assert (out / "summary.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # its staging removed
    monkeypatch.undo()
    evaluate.run(tiny_checkpoints["unet"], data, out=out, overwrite=True, **RUN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no staging left


def test_nan_in_target_frames_is_named(tiny_checkpoints, tmp_path, capsys):
    ds = make_dataset()
    ds["u"][1, 4, 3, 3] = np.nan  # sim 1 is held out; frame 4 a target of start 0
    path = tmp_path / "nan.nc"
    ds.to_netcdf(path)
    out = evaluate.run(tiny_checkpoints["unet"], path, out=tmp_path / "r", verbose=False,
                       **RUN)
    err = capsys.readouterr().err
    assert "simulation 1, frame 4, variable 'u'" in err and "test-domain" in err
    warn = json.loads((out / "summary.json").read_text())["meta"]["warnings"]
    assert any("simulation 1, frame 4" in w for w in warn)


def test_overwrite_replaces_the_report_and_keeps_every_other_file(tiny_data, tiny_checkpoints,
                                                                  tmp_path, capsys):
    """--overwrite into a training run folder: the checkpoints, the metrics log and the
    notes stay byte for byte; the old report's files (a figure it listed included) go."""
    data, _ = tiny_data
    out = tmp_path / "evo"
    out.mkdir()
    mine = {"best.pt": tiny_checkpoints["unet"].read_bytes(), "last.pt": b"last",
            "metrics.jsonl": b'{"epoch": 0}\n', "NOTES.txt": b"n\n",
            "rollout_mine.png": b"not the report's"}
    for name, blob in mine.items():
        (out / name).write_bytes(blob)
    args = ["-c", str(out / "best.pt"), "-d", str(data), "-s", "test-domain", "--steps", "2",
            "--out", str(out), "--no-figures", "--overwrite"]
    assert main(args + ["-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == ["metrics.csv", "summary.json", "summary.md"]
    summary["files"].append("rollout_old.png")  # as if the old report had drawn it
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "rollout_old.png").write_bytes(b"old figure")
    assert main(args) == 0
    assert "kept 5 other file(s)" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in mine} == mine
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*mine, "metrics.csv", "summary.json", "summary.md"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evo"]  # no staging, no lock


def test_a_report_folder_has_one_owner(tiny_data, tiny_checkpoints, tmp_path, capsys,
                                       hold_elsewhere):
    """While another process owns --out, evaluate is refused with one line and writes
    nothing; once that process is killed (-9) the folder is free again."""
    data, _ = tiny_data
    out = tmp_path / "rep"
    holder = hold_elsewhere(out)
    args = ["-c", str(tiny_checkpoints["unet"]), "-d", str(data), "-s", "test-domain",
            "--steps", "2", "--out", str(out), "--no-figures", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err
    assert "another process" in err and f"pid {holder.pid}" in err
    assert not out.exists()
    holder.kill()
    holder.wait()
    assert main(args) == 0  # no stale lock
    assert (out / "summary.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_quiet_shows_no_raw_numpy_warnings(tiny_checkpoints, tmp_path, capsys):
    """Inf in the data: under -q the report's one warning line names it, and numpy's own
    RuntimeWarnings (invalid value encountered in subtract, ...) are not shown."""
    import warnings

    ds = make_dataset()
    ds["u"][:, 3:] = np.inf   # targets of the test-domain windows
    path = tmp_path / "inf.nc"
    ds.to_netcdf(path)
    args = ["-c", str(tiny_checkpoints["unet"]), "-d", str(path), "-s", "test-domain",
            "--steps", "2", "--stride", "8", "--no-figures"]

    def run(extra):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(args + extra) == 0
        return [w for w in caught if issubclass(w.category, RuntimeWarning)]

    assert run(["-o", str(tmp_path / "loud")])   # numpy warns here without -q
    capsys.readouterr()
    assert run(["-o", str(tmp_path / "quiet"), "-q"]) == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: unet / test-domain: non-finite "
                                               "metrics"), err


def test_a_full_disk_is_one_line_naming_the_report(tiny_data, tiny_checkpoints, tmp_path,
                                                    monkeypatch, capsys):
    import errno

    from evaluate import report

    data, _ = tiny_data

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(report, "write_summary", full)  # dies after metrics.csv
    out = tmp_path / "rep"
    rc = main(["-c", str(tiny_checkpoints["unet"]), "-d", str(data), "-s", "test-domain",
               "--steps", "2", "--out", str(out), "--no-figures", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].endswith(f"cannot write {out}: no space left on device")
    assert list(tmp_path.iterdir()) == []  # nothing staged is left


def test_a_run_clears_the_staging_folder_a_killed_run_left(tiny_data, tiny_checkpoints,
                                                           tmp_path):
    """Even a run that then fails (here: missing data) removes ``.NAME.partial`` of its
    --out, which it holds; another output's is untouched."""
    data, _ = tiny_data
    out = tmp_path / "rep"
    for name in (".rep.partial", ".rep2.partial"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.csv").write_bytes(b"\0" * 1000)
    (tmp_path / ".rep.a1b2c3d4.tmp").write_text("x")
    with pytest.raises(evaluate.EvaluationError, match="no such data file"):
        evaluate.run(tiny_checkpoints["unet"], tmp_path / "missing.nc", out=out, **RUN)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".rep2.partial"]
    evaluate.run(tiny_checkpoints["unet"], data, out=out, **RUN)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".rep2.partial", "rep"]
