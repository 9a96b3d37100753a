"""relaxed_gconv_unet with relax="translation" / "both": weights w_l(x) / w_l(g, x),
relaxed over p4 = C4 x| Z^2 (and D4) (issue 12)."""

import pytest
import torch

from surrogate import build_model

from surrogate_helpers import equivariance_error as _err

H = 16


def _model(relax, group="C4", seed=0):
    torch.manual_seed(seed)
    return build_model("relaxed_gconv_unet", T_in=2, hidden=2, depth=2, group=group,
                       relax=relax, grid=(H, H), alpha=1.0).double()


X = torch.randn(2, 2, 3, H, H, dtype=torch.float64, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("group", ["C4", "D4"])
@pytest.mark.parametrize("relax", ["translation", "both"])
def test_exactly_equivariant_at_init_and_equal_to_the_strict_mixture(relax, group):
    m = _model(relax, group)
    assert _err(m, X) < 1e-10
    assert m.equivariance_penalty().item() == 0.0
    ref = build_model("relaxed_gconv_unet", T_in=2, hidden=2, depth=2, group=group).double()
    ref.load_state_dict({k: v for k, v in m.state_dict().items()
                         if "relaxed_weights" not in k}, strict=False)
    assert torch.allclose(m(X), ref(X), atol=1e-10)  # constant w: the rotation-relaxed layer


def _set_weights(m, fn):
    with torch.no_grad():
        for w in m.relaxation_weights().values():
            n = w.shape[-1]
            i = torch.arange(n, dtype=w.dtype)
            yy, xx = torch.meshgrid(i, i, indexing="ij")
            w.copy_(w + fn(yy - (n - 1) / 2, xx - (n - 1) / 2).expand_as(w))


def test_a_rotation_invariant_position_pattern_keeps_the_symmetry():
    """w_l(x) radial about the box centre: the model still commutes with every rotation
    and mirror about that centre; a left-right ramp breaks it."""
    m = _model("translation", "D4")
    _set_weights(m, lambda y, x: 0.2 * (x ** 2 + y ** 2) / 64)
    assert m.equivariance_penalty().item() > 0
    assert _err(m, X) < 1e-10
    m = _model("translation", "D4")
    _set_weights(m, lambda y, x: 0.3 * x / 8)
    assert _err(m, X) > 1e-3


def test_both_perturbed_breaks_symmetry_penalty_grid_export():
    m = _model("both")
    with torch.no_grad():
        for w in m.relaxation_weights().values():
            w.add_(0.2 * torch.randn_like(w))
    assert _err(m, X) > 1e-3
    pen = m.equivariance_penalty()
    assert pen.item() > 0
    pen.backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if "relaxed" in n)
    assert {tuple(w.shape) for w in m.relaxation_weights().values()} == \
        {(2, 4, H, H), (2, 4, H // 2, H // 2)}
    ex = m.export()  # L expanded strict kernels in one Conv2d + the fixed mixing map
    assert torch.allclose(ex(X), m(X), atol=1e-10)
    assert not any(hasattr(mod, "expand_filter") for mod in ex.modules())
    rebuilt = build_model(**{**m.config, "exported": True}).double()
    rebuilt.load_state_dict(ex.state_dict())
    assert torch.allclose(rebuilt(X), m(X), atol=1e-10)
    for net in (m, ex):
        with pytest.raises(ValueError, match="built for a 16x16 grid"):
            net(torch.randn(1, 2, 3, 2 * H, 2 * H, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs grid"):
        build_model("relaxed_gconv_unet", T_in=2, hidden=2, depth=2, relax="both")
    with pytest.raises(ValueError, match="relax must be one of"):
        build_model("relaxed_gconv_unet", T_in=2, hidden=2, depth=2, relax="scale")
