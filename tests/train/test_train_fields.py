"""Velocity-only training (``--fields u,v``, the paper's observation model): the model
is given and predicts u, v alone, the checkpoint says so, evaluation and forecasts
follow it, and bad field lists are one-line errors."""

import torch
import pytest

import surrogate
from surrogate.checkpoint import read_checkpoint
from train.cli import main


def _train(tiny_nc, out, *extra):
    return main(["--data", str(tiny_nc), "--model", "gconv_unet", "--out", str(out),
                 "--hidden", "2", "--depth", "2", "--model-opt", "norm_groups=1",
                 "--T-in", "2", "--K", "2", "--epochs", "1", "--batch-size", "16",
                 "--no-progress", "--device", "cpu", *extra])


def test_velocity_only_model_sees_and_predicts_u_v(tiny_nc, tmp_path, capsys):
    out = tmp_path / "vel"
    assert _train(tiny_nc, out, "--fields", "u,v") == 0
    ck = read_checkpoint(out / "best.pt")
    assert ck["metadata"]["channels"] == ["u", "v"]
    sur = surrogate.load(out / "best.pt")
    assert sur.layout.channels == ("u", "v") and sur.layout.vectors == (("u", "v"),)
    hist = torch.zeros(1, 2, 2, 16, 16)
    assert sur.rollout(hist, 3).shape == (1, 3, 2, 16, 16)
    import evaluate
    rep = evaluate.run([out / "best.pt"], [tiny_nc], splits=["test-domain"], steps=2,
                       out=tmp_path / "rep", figures=False, verbose=False)
    assert "velocity" in (rep / "summary.md").read_text()


@pytest.mark.parametrize("value, words", [
    ("u,x", "distinct names of u, v, density"),
    ("u,density", "both velocity components u and v or neither"),
    ("u,u,v", "distinct names"),
])
def test_bad_fields_are_one_line_errors(tiny_nc, tmp_path, capsys, value, words):
    with pytest.raises(SystemExit) as e:
        _train(tiny_nc, tmp_path / "bad", "--fields", value)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert words in err
