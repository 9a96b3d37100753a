"""The per-wall breakdown of the regime map: window-weighted ratios per inflow wall."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import regime_walls as RW  # noqa: E402


def test_per_wall_weighs_each_simulation_by_its_windows():
    walls = [0, 1, 0, 2]
    model = {0: {"n_windows": 3, "rmse": 1.0}, 1: {"n_windows": 2, "rmse": 0.5},
             2: {"n_windows": 1, "rmse": 4.0}, 3: {"n_windows": 5, "rmse": 0.2}}
    base = {0: {"rmse": 2.0}, 1: {"rmse": 1.0}, 2: {"rmse": 2.0}, 3: {"rmse": 0.4}}
    out = RW.per_wall(model, base, walls)
    assert list(out) == [0, 1, 2]
    assert out[0] == pytest.approx((3 * 1.0 + 1 * 4.0) / (3 * 2.0 + 1 * 2.0))
    assert out[1] == pytest.approx(0.5) and out[2] == pytest.approx(0.5)


def test_markdown_has_a_row_per_model_and_a_column_per_wall():
    md = RW.markdown("d", {"plain": {0: [0.5, 0.7], 2: [0.3]}, "x": {}}, "conditions")
    assert md[4] == "| model | bottom wall | top wall |"
    assert md[6] == "| plain | 0.600 ± 0.141 | 0.300 ± 0.000 |"
    assert md[7] == "| x | – | – |"


def test_an_unknown_dataset_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="no dataset 'nope'"):
        RW.main(["--data", "nope", "--work", str(tmp_path), "--out", str(tmp_path)])
