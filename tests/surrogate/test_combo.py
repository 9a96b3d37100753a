"""combo_unet: a plain and an equivariant U-Net combined with learned weights (a
Table-1 baseline of the paper)."""

import numpy as np
import pytest
import torch
import xarray as xr

from surrogate import build_model, count_parameters, width_for_params
from surrogate.checkpoint import save
from surrogate.forecast import load
from surrogate.normalization import Normalization
from surrogate.symmetry import FieldLayout

from surrogate_helpers import equivariance_error as _err


def _model(**kw):
    torch.manual_seed(0)
    return build_model("combo_unet", T_in=2, hidden=2, depth=2, **kw).double()


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_plain_weight_zero_is_exactly_equivariant_and_the_mix_breaks_it(group):
    m = _model(group=group)
    x = torch.randn(2, 2, 3, 16, 16, dtype=torch.float64)
    assert _err(m, x) > 1e-3                      # (1/2, 1/2): the plain net counts
    with torch.no_grad():
        m.combo_weights.copy_(torch.tensor([0.0, 1.0]))
    assert _err(m, x) < 1e-10
    with torch.no_grad():                         # the equivariant net alone, exactly
        torch.testing.assert_close(m(x), m.equiv(x), rtol=0, atol=0)


def test_persistence_init_is_persistence_for_any_mix_and_both_nets_learn():
    m = _model()
    m.init_persistence()
    x = torch.randn(2, 2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        m.combo_weights.copy_(torch.tensor([0.3, 1.7]))
        assert torch.equal(m(x), x[:, -1])
    m.set_delta_scale([0.1, 0.1, 0.4])
    assert torch.equal(m.plain.delta_scale, m.equiv.delta_scale)
    y = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    ((m(x) - y) ** 2).mean().backward()
    assert m.plain.head.weight.grad.abs().sum() > 0
    assert m.equiv.head.weight.grad.abs().sum() > 0
    assert m.combo_weights.grad is not None
    assert m.equivariance_penalty().item() == 0.0


@pytest.mark.parametrize("n", [32, 64])
def test_forward_backward_export_and_rebuild(n):
    m = build_model("combo_unet", T_in=2, hidden=2, depth=3)
    x = torch.randn(2, 2, 3, n, n)
    m(x).square().mean().backward()
    assert all(p.grad is not None for p in m.parameters())
    with torch.no_grad():
        m.combo_weights.copy_(torch.tensor([0.8, 0.4]))
        ex = m.export()
        torch.testing.assert_close(ex(x), m(x), rtol=1e-4, atol=1e-5)
    assert ex.exported and not any(hasattr(mod, "expand_filter") for mod in ex.modules())
    again = build_model(**m.config)
    again.load_state_dict(m.state_dict())
    assert count_parameters(again) == count_parameters(m)
    rebuilt = build_model(**{**m.config, "exported": True})
    rebuilt.load_state_dict(ex.state_dict())


def test_width_for_params_sizes_the_pair_and_bad_options_are_refused():
    h = width_for_params("combo_unet", 20_000, T_in=4, depth=3)
    n = count_parameters(build_model("combo_unet", hidden=h, T_in=4, depth=3))
    assert abs(n - 20_000) < 0.25 * 20_000
    with pytest.raises(ValueError, match="residual"):
        build_model("combo_unet", T_in=2, hidden=2, depth=2, residual=False)
    with pytest.raises(ValueError, match="not available for 'combo_unet'"):
        build_model("combo_unet", T_in=2, hidden=2, depth=2, group="C8")


def test_checkpoint_round_trip_and_forecast(tmp_path):
    m = build_model("combo_unet", T_in=2, hidden=2, depth=2)
    with torch.no_grad():
        m.combo_weights.copy_(torch.tensor([0.7, 0.2]))
    lay = FieldLayout()
    norm = Normalization(lay, (0.5, 0.5, 2.0), (0.0, 0.0, 0.3))
    path = save(m, tmp_path / "combo.pt", normalization=norm,
                metadata={"data": {"grid": {"ny": 16, "nx": 16}, "dt": 0.5}})
    s = load(path)
    x = torch.randn(2, 2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(s(x), m.eval()(x))
    rng = np.random.default_rng(0)
    ds = xr.Dataset({c: (("sim", "time", "y", "x"),
                         rng.normal(size=(1, 3, 16, 16)).astype(np.float32))
                     for c in lay.channels},
                    coords={"sim": [0], "time": [0.0, 0.5, 1.0],
                            "y": np.arange(16) + 0.5, "x": np.arange(16) + 0.5})
    out = s.forecast(ds, steps=3)
    assert out.sizes["time"] == 3 and bool(np.isfinite(out["density"]).all())


def test_evaluate_reports_the_learned_combination_weights(tmp_path):
    """The relaxation summary (and so the evaluate report) gives a combo net's plain
    share |w_p| / (|w_p| + |w_e|); the heatmap leaves it out."""
    from evaluate import relaxation_summary
    from evaluate.plots import relaxation_heatmaps
    from evaluate.report import ModelEvaluation
    from evaluate.symmetry_sections import relaxation_section
    m = _model()
    (entry,) = relaxation_summary(m)
    assert entry.kind == "combo" and entry.relative_deviation == pytest.approx(0.5)
    with torch.no_grad():
        m.combo_weights.copy_(torch.tensor([-0.2, 0.6]))
    (entry,) = relaxation_summary(m)
    assert entry.relative_deviation == pytest.approx(0.25)
    assert entry.profile == pytest.approx({"w_p": -0.2, "w_e": 0.6})
    ev = ModelEvaluation("combo", "c.pt", "combo_unet", {}, relaxation=[entry])
    table = "\n".join(relaxation_section([ev]))
    assert "| combo_weights | combo | 0.25 |" in table and "w_p -0.2, w_e 0.6" in table
    assert relaxation_heatmaps([entry], tmp_path / "r.png").is_file()
    # a model without combo weights or relaxed layers: nothing to report
    assert relaxation_summary(build_model("gconv_unet", T_in=2, hidden=2, depth=2)) == []
