"""The benchmark scripts stay in step with the package: their plans build every model
they name (widths, parameter counts, FLOP estimate) without generating or training."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _dry_run(tmp_path, *args):
    work, out = tmp_path / "work", tmp_path / "out"
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_accuracy.py"), *args, "--dry-run",
         "--work", str(work), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert not work.exists() and not out.exists()  # a dry run writes nothing
    return p.stdout


@pytest.mark.parametrize("scale,expected", [
    ("smoke", {"main": 5, "inputs": 12, "sweep": 6, "ablation": 20}),
    ("paper", {"main": 60, "inputs": 36, "sweep": 45, "ablation": 60}),
])
def test_accuracy_plan_with_every_study(tmp_path, scale, expected):
    out = _dry_run(tmp_path, "--scale", scale, "--studies", "main", "sweep", "inputs",
                   "ablation")
    counts = dict(re.findall(r"'(\w+)': (\d+)", out.split("runs per study:")[1]))
    assert {k: int(v) for k, v in counts.items()} == expected
    # every ablation variant is built with its own width and parameter count
    assert "(relaxed steerable @ strict width, relax_scale 0.1)" in out
    assert "(relaxed L=1)" in out
    tflop = float(re.search(r"training compute .*?: ([\d,.]+) TFLOP", out)
                  .group(1).replace(",", ""))
    assert tflop > 0


def test_accuracy_default_studies_leave_out_the_ablation(tmp_path):
    out = _dry_run(tmp_path, "--scale", "paper")  # no --studies: the default three
    counts = dict(re.findall(r"'(\w+)': (\d+)", out.split("runs per study:")[1]))
    assert set(counts) == {"main", "sweep", "inputs"}


def test_accuracy_table1_study_plans_every_row_clc_on_translation_only(tmp_path):
    out = _dry_run(tmp_path, "--scale", "smoke", "--studies", "table1", "--scenarios",
                   "rotation", "translation")
    counts = dict(re.findall(r"'(\w+)': (\d+)", out.split("runs per study:")[1]))
    assert {k: int(v) for k, v in counts.items()} == {"table1": 10 + 11}
    for name in ("rpp_unet", "combo_unet", "clc_unet", "relaxed_conv_unet",
                 "(relaxed roto-translation)", "(relaxed roto-translation steer)"):
        assert name in out
    out = _dry_run(tmp_path, "--scale", "smoke", "--studies", "table1", "--scenarios",
                   "rotation", "translation", "--rows", "relaxed roto-translation steer",
                   "CLC")
    counts = dict(re.findall(r"'(\w+)': (\d+)", out.split("runs per study:")[1]))
    assert {k: int(v) for k, v in counts.items()} == {"table1": 2 + 1}


def test_accuracy_seed_list_plans_those_seeds_and_refuses_a_negative_one(tmp_path):
    out = _dry_run(tmp_path, "--scale", "smoke", "--seed-list", "2", "1")
    assert "seeds [1, 2]" in out
    counts = dict(re.findall(r"'(\w+)': (\d+)", out.split("runs per study:")[1]))
    assert int(counts["main"]) == 2 * 5
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_accuracy.py"),
                        "--seed-list", "-1", "--dry-run"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 2 and "seeds must be >= 0" in p.stderr
