"""evaluate never loses or half-writes a report, and names non-finite data (issue 13)."""

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
    # an empty folder is fine; --overwrite replaces the whole report
    (tmp_path / "empty").mkdir()
    evaluate.run(tiny_checkpoints["unet"], data, out=tmp_path / "empty", **RUN)
    evaluate.run(tiny_checkpoints["unet"], data, out=out, overwrite=True, **RUN)
    assert (out / "summary.md").is_file() and not (out / "old.md").exists()
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
