"""The demo's last line: the best model's correlation time over longer rollouts."""

import json
import sys
from pathlib import Path

import pytest

import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import demo  # noqa: E402


def _summary(ratios):
    models = [{"label": f"m{i}", "vs_persistence": {"test-domain": {"rmse_velocity": r}}}
              for i, r in enumerate(ratios)]
    return {"models": models + [{"label": "persistence", "baseline": True,
                                 "vs_persistence": {}}]}


def test_correlation_horizon_picks_the_best_model_and_reads_its_report(tmp_path, monkeypatch):
    calls = []

    def fake_run(ckpts, data, *, splits, steps, out, labels, **kw):
        calls.append((ckpts, splits, steps, labels))
        Path(out).mkdir(parents=True)
        split = {"corr_time_steps": 37.5, "corr_time_censored": 0.9, "n_windows": 10}
        (Path(out) / "summary.json").write_text(json.dumps(
            {"models": [{"splits": {"test-domain": split}}]}))
        return Path(out)

    monkeypatch.setattr(evaluate, "run", fake_run)
    line = demo.correlation_horizon(_summary([0.5, None, 0.2]), ["a.pt", "b.pt", "c.pt"],
                                    tmp_path / "d.nc", tmp_path, 40)
    assert calls == [(["c.pt"], ("test-domain",), 40, ["m2"])]
    assert "(m2)" in line and "37.5 steps" in line and "90% of 10 windows" in line


@pytest.mark.parametrize("ratios", [[0.3], [None]])
def test_correlation_horizon_says_why_it_measured_nothing(tmp_path, monkeypatch, ratios):
    def too_short(*a, **kw):
        raise evaluate.EvaluationError("the records are too short")

    monkeypatch.setattr(evaluate, "run", too_short)
    line = demo.correlation_horizon(_summary(ratios), ["a.pt"], tmp_path / "d.nc", tmp_path, 90)
    assert "not measured" in line
