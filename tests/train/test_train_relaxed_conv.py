"""relaxed_conv_unet through training, checkpoint, forecast and evaluate."""

import numpy as np
import pytest

import evaluate
from surrogate.forecast import ForecastError, load
from surrogate.checkpoint import read_checkpoint
from train import fit

from train_fixtures import N, tiny_config


def _forecasts_on_its_grid_only(best) -> None:
    """The checkpoint forecasts on the training grid and refuses another one."""
    sur = load(best)
    assert sur.forecast(np.zeros((1, 2, 3, N, N), np.float32), steps=2).sizes["time"] == 2
    with pytest.raises(ForecastError, match=f"trained on a {N}x{N} grid"):
        sur.forecast(np.zeros((1, 2, 3, 2 * N, 2 * N), np.float32), steps=1)


def test_trains_records_its_grid_and_refuses_another(tiny_nc, tmp_path):
    best = fit(tiny_config(tiny_nc, tmp_path / "run", model="relaxed_conv_unet", epochs=2))
    ck = read_checkpoint(best)
    assert ck["model_config"]["grid"] == [N, N]
    _forecasts_on_its_grid_only(best)
    # training moved the position-dependent weights: evaluate reports where
    out = evaluate.run(best, tiny_nc, splits="test-domain", steps=2, out=tmp_path / "rep",
                       device="cpu", figures=True, gif=False)
    md = (out / "summary.md").read_text()
    assert "| translation |" in md
    assert (out / "relaxation_relaxed_conv_unet.png").is_file() or \
        list(out.glob("relaxation_*.png"))


@pytest.mark.parametrize("model", ["relaxed_gconv_unet", "relaxed_steer_unet"])
def test_roto_translation_relaxation_trains_with_the_data_grid(tiny_nc, tmp_path, model):
    cfg = tiny_config(tiny_nc, tmp_path / "both", model=model, epochs=1,
                      model_config={"hidden": 2, "depth": 2, "norm_groups": 1,
                                    "relax": "both"})
    best = fit(cfg)
    ck = read_checkpoint(best)
    assert ck["model_config"]["relax"] == "both" and ck["model_config"]["grid"] == [N, N]
    _forecasts_on_its_grid_only(best)
    out = evaluate.run(best, tiny_nc, splits="test-domain", steps=2, out=tmp_path / "rep",
                       device="cpu", figures=False, gif=False)
    md = (out / "summary.md").read_text()
    assert "| translation |" in md
    if model == "relaxed_steer_unet":  # the banks' kernel-position relaxation as well
        assert "| steerable |" in md


def test_clc_unet_trains_records_its_grid_and_evaluate_maps_it(tiny_nc, tmp_path):
    best = fit(tiny_config(tiny_nc, tmp_path / "clc", model="clc_unet", epochs=2))
    ck = read_checkpoint(best)
    assert ck["model_config"]["grid"] == [N, N]
    _forecasts_on_its_grid_only(best)
    out = evaluate.run(best, tiny_nc, splits="test-domain", steps=2, out=tmp_path / "rep",
                       device="cpu", figures=False, gif=False)
    assert "| translation |" in (out / "summary.md").read_text()
