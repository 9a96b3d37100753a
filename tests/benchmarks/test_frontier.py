"""The speed-accuracy frontier on a tiny cache: a trained-like checkpoint with its scores,
the simulator search (one converging and one failing configuration), the report."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "evaluate"))

import bench_frontier as BF  # noqa: E402
import frontier_report as FR  # noqa: E402
from evaluate_helpers import make_checkpoint, make_dataset  # noqa: E402


def test_conv_flops_counts_every_convolution():
    import torch
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 2, 1))
    x = torch.zeros(1, 3, 8, 8)
    assert BF.conv_flops(net, x) == 2 * (4 * 64 * 27 + 2 * 64 * 4)


def test_frontier_end_to_end_on_a_tiny_cache(tmp_path):
    ds = make_dataset()
    run = tmp_path / "work" / "runs" / "tiny" / "unet" / "seed0"
    make_checkpoint(run / "best.pt", "unet", ds)
    scores = {s: {"rmse": 0.5, "rmse_velocity": 0.1} for s in ("test-domain", "test-future")}
    (run / "result.json").write_text(json.dumps(
        {"data_key": "tiny", "label": "plain", "model": "unet", "scores": scores}))
    base = {c: {"test-domain": 1.0, "test-future": 2.0} for c in ("all", "velocity")}
    rj = tmp_path / "regime.json"
    rj.write_text(json.dumps({"persistence": {"tiny": base}}))
    out = tmp_path / "out"
    assert BF.main(["--work", str(tmp_path / "work"), "--regime-json", str(rj), "--batch",
                    "2", "--frames", "2", "--reps", "1", "--sim-batches", "4",
                    "--sim-precisions", "64", "--big-sim-batches", "4", "--sim-steps", "3",
                    "--sizes", "16",
                    "--out", str(out), "--threads", "1"]) == 0
    data = json.loads((out / "frontier.json").read_text())
    (r,) = data["runs"]
    assert r["test-domain/velocity"] == 0.1 and r["test-future/all"] == 0.25
    assert r["fps"] > 0 and r["flops_per_frame"] > 0
    assert r["batch"] == 2 and r["frozen"] is True     # the traced, frozen rollout
    assert data["simulator"]["16"][0]["fps"] > 0
    md = (out / "frontier.md").read_text()
    assert "## Simulator at 16x16" in md and "| tiny | plain |" in md
    assert "exported, traced and frozen), batch 2," in md
    assert md == FR.markdown(data)                      # the report regenerates from JSON
    # the verdict against the goal, from the JSON alone
    assert data["save_every"] == {"tiny": 1}      # the helper's file has no save_every
    data["simulator"]["32"] = [{"batch": 4, "precision": 64, "fps": r["fps"] / 10},
                               {"batch": 8, "precision": 32, "fps": None, "note": "x"}]
    assert "meets the 5x goal" in FR.verdict(data, FR.best_simulator(data["simulator"]["32"]))
