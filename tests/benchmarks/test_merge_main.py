"""The main study's table merged from several results folders: ratios to persistence,
the filters, and the committed table it reproduces."""

import csv
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import merge  # noqa: E402

FIELDS = ["study", "data", "label", "model", "breaking_inputs", "seed", "hidden", "params",
          "split", "rmse", "rmse_velocity", "vrmse", "n_windows", "best_epoch",
          "train_seconds", "error"]


def _folder(tmp_path, name, rows):
    d = tmp_path / name
    d.mkdir()
    (d / "accuracy_cpu.json").write_text(json.dumps({
        "persistence": {"rot": {"test-future": 2.0, "test-domain": 1.0}},
        "persistence_velocity": {"rot": {"test-future": 1.0, "test-domain": 0.5}}}))
    with open(d / "accuracy_cpu.csv", "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in FIELDS})
    return d


def _row(seed, split, rmse, vel, **kw):
    return {"study": "main", "data": "rot", "label": "unet", "model": "unet", "seed": seed,
            "params": 100, "split": split, "rmse": rmse, "rmse_velocity": vel, **kw}


def test_ratios_divide_by_persistence_and_skip_variants_errors_and_other_studies(tmp_path):
    a = _folder(tmp_path, "a", [_row(0, "test-future", 1.0, 0.5),
                                _row(0, "test-domain", 0.2, 0.1),
                                _row(1, "test-domain", 0.4, 0.2, study="inputs"),
                                _row(1, "test-domain", 0.4, 0.2, label="unet+coords"),
                                _row(2, "test-domain", 0.4, 0.2, error="boom")])
    b = _folder(tmp_path, "b", [_row(1, "test-domain", 0.3, 0.2)])
    rat = merge.ratios(((a, ("rot",)), (b, ("rot",))), models=["unet"])
    assert rat[("rot", "unet", "test-future")] == [merge.Ratio(0.5, 0.5, 0, 100)]
    assert rat[("rot", "unet", "test-domain")] == [merge.Ratio(0.2, 0.2, 0, 100),
                                                   merge.Ratio(0.4, 0.3, 1, 100)]
    with pytest.raises(ValueError, match="seeds"):
        merge.table_md(rat, ["rot"], ["unet"])   # seeds 1-2 of test-future are missing


def test_table_cells_are_seed_means_velocity_then_all_future_then_domain():
    R = merge.Ratio
    rat = {("rot", "unet", "test-future"): [R(0.5, 0.7, 0), R(0.7, 0.9, 1)],
           ("rot", "unet", "test-domain"): [R(0.1, 0.2, 1), R(0.3, 0.4, 0)]}
    text = merge.table_md(rat, ["rot"], ["unet"], seeds=(0, 1))
    assert "| `unet` | 0.60/0.80, 0.20/0.30 |" in text
    assert text.endswith("0.90 (rot, unet, test-future, seed 1)\n")


def test_committed_main_table_is_reproduced_from_the_committed_runs():
    committed = (ROOT / "benchmarks" / "results" / "main_k6_nonneg" / "table.md").read_text()
    assert merge.table_md(merge.ratios()) == committed
