"""rpp_unet: residual pathway priors (a Table-1 baseline of the paper)."""

import pytest
import torch

from surrogate import build_model

from surrogate_helpers import equivariance_error as _err


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_plain_path_zero_is_exactly_equivariant_and_nonzero_breaks_it(group):
    torch.manual_seed(0)
    m = build_model("rpp_unet", T_in=2, hidden=2, depth=2, group=group).double()
    x = torch.randn(2, 2, 3, 16, 16, dtype=torch.float64)
    assert _err(m, x) < 1e-10
    pen0 = m.equivariance_penalty().item()
    assert pen0 > 0  # the small prior on the equivariant path
    with torch.no_grad():
        for mod in m.modules():
            if hasattr(mod, "plain_weight"):
                mod.plain_weight.normal_(0, 0.1)
    assert _err(m, x) > 1e-3
    assert m.equivariance_penalty().item() > pen0
    ex = m.export()  # both paths fold into one Conv2d per layer
    assert torch.allclose(ex(x), m(x), atol=1e-10)


def test_penalty_is_differentiable_and_ratio_validated():
    m = build_model("rpp_unet", T_in=2, hidden=2, depth=2, alpha=1.0)
    m.equivariance_penalty().backward()
    grads = [mod.plain_weight.grad for mod in m.modules() if hasattr(mod, "plain_weight")]
    assert grads and all(g is not None for g in grads)
    with pytest.raises(ValueError, match="rpp_ratio"):
        build_model("rpp_unet", T_in=2, hidden=2, depth=2, rpp_ratio=-1.0)


def test_evaluate_summarises_how_far_the_plain_path_moved():
    from evaluate import relaxation_summary
    m = build_model("rpp_unet", T_in=2, hidden=2, depth=2)
    assert all(l.kind == "rpp" and l.relative_deviation == 0.0
               for l in relaxation_summary(m))
    with torch.no_grad():
        for mod in m.modules():
            if hasattr(mod, "plain_weight"):
                mod.plain_weight.normal_(0, 0.1)
    layers = relaxation_summary(m)
    assert layers and all(l.relative_deviation > 0 for l in layers)
    assert layers[0].profile.shape == (3, 3)
