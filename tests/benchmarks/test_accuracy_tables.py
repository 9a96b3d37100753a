"""The accuracy report's ratio-to-persistence table: values, seeds, and the cells that lose."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy.tables import collect, ratio_tables  # noqa: E402


def _run(label, seed, tf, td, tf_vel, td_vel):
    return {"data_key": "rot", "label": label, "model": label, "breaking_inputs": [],
            "seed": seed, "scores": {
                "test-future": {"rmse": tf, "rmse_velocity": tf_vel},
                "test-domain": {"rmse": td, "rmse_velocity": td_vel}}}


def test_ratio_table_divides_both_metrics_by_persistence_and_names_the_losers():
    results = [_run("a", 0, 0.4, 0.2, 0.1, 0.05), _run("a", 1, 0.6, 0.2, 0.3, 0.05),
               _run("b", 0, 1.2, 0.1, 0.1, 0.1)]
    base = {"rot": {"test-future": 1.0, "test-domain": 0.5}}
    base_vel = {"rot": {"test-future": 0.4, "test-domain": 0.2}}
    lines = ratio_tables(collect(results), collect(results, "rmse_velocity"), base,
                         base_vel, ["rot"], ["a", "b"], nseeds=2)
    text = "\n".join(lines)
    # a: velocity (0.1+0.3)/2 / 0.4 = 0.50, all (0.4+0.6)/2 / 1.0 = 0.50; td 0.25 / 0.40
    assert "| a | 0.50 / 0.50 | 0.25 / 0.40 |" in text
    # b has one of two seeds, and loses test-future over all fields (1.20)
    assert "| b | 0.25 / 1.20 (1/2 seeds) | 0.50 / 0.20 (1/2 seeds) |" in text
    assert "b on rot test-future (0.25 / 1.20)" in text and "a on rot" not in text


def test_ratio_table_without_velocity_scores_shows_a_dash_not_a_number():
    r = _run("a", 0, 0.4, 0.2, None, None)
    lines = ratio_tables(collect([r]), collect([r], "rmse_velocity"),
                         {"rot": {"test-future": 1.0, "test-domain": 1.0}}, {},
                         ["rot"], ["a"], nseeds=1)
    assert "| a | – / 0.40 | – / 0.20 |" in "\n".join(lines)
