"""benchmarks/recipe_variants.py: each variant changes what it names and nothing else
(plans only, no training)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import recipe_variants as RV  # noqa: E402


def test_recipe_variants_change_the_recipe_or_the_settings_only():
    base = {"K": 6, "lr": 4e-3, "recipe": {"noise": 0.5, "loss_weights": {"density": 2.0}}}
    assert RV.train_overrides(base, "K3") == {**base, "K": 3}
    ema = RV.train_overrides(base, "ema")
    assert ema["K"] == 3 and ema["recipe"] == {**base["recipe"], "ema": 0.99}
    assert RV.train_overrides(base, "K6dw1")["recipe"]["loss_weights"] == {}
    assert base["recipe"]["loss_weights"] == {"density": 2.0}   # not modified


def test_model_variants_take_their_width_from_their_parameter_target(tmp_path):
    _, base = RV.base_task("unet", "boundary", tmp_path)
    wide = RV.variant_task(base, "K6w2", tmp_path)
    cause = RV.variant_task(base, "K6cause", tmp_path)
    assert wide.train["K"] == 6 and wide.hidden > base.hidden
    assert 1.7 * base.params < wide.params < 2.3 * base.params
    assert cause.breaking_inputs == ("cause",) and cause.hidden == base.hidden
    assert len({base.out, wide.out, cause.out}) == 3


def test_unknown_variant_is_refused():
    with pytest.raises(SystemExit):
        RV.parse(["unet", "K6,nope", "boundary"])
