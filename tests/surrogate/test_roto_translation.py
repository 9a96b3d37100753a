"""relaxed_gconv_unet and relaxed_steer_unet with relax="translation" / "both":
position-dependent weights w_l(x) (and w_l(g, x) for the group conv), relaxed over
p4 = C4 x| Z^2 (and D4)."""

import pytest
import torch

from surrogate import build_model
from surrogate.groups import get_group
from surrogate.layers.relaxed_steerable import RelaxedSteerableConv

from surrogate_helpers import equivariance_error as _err

H = 16
MODELS = ["relaxed_gconv_unet", "relaxed_steer_unet"]


def _model(relax, group="C4", seed=0, name="relaxed_gconv_unet"):
    torch.manual_seed(seed)
    return build_model(name, T_in=2, hidden=2, depth=2, group=group,
                       relax=relax, grid=(H, H), alpha=1.0).double()


X = torch.randn(2, 2, 3, H, H, dtype=torch.float64, generator=torch.Generator().manual_seed(3))


def _mixing_maps(m):
    """The position-dependent mixing weights ``w`` of every relaxed layer (live)."""
    return [w for k, w in m.relaxation_weights().items() if k.endswith(".w")]


def _live_mixing_maps(m):
    return [mod.relaxed_weights for mod in m.modules() if hasattr(mod, "relaxed_weights")]


@pytest.mark.parametrize("group", ["C4", "D4"])
@pytest.mark.parametrize("relax", ["translation", "both"])
def test_gconv_exactly_equivariant_at_init_and_equal_to_the_strict_mixture(relax, group):
    m = _model(relax, group)
    assert _err(m, X) < 1e-10
    assert m.equivariance_penalty().item() == 0.0
    ref = build_model("relaxed_gconv_unet", T_in=2, hidden=2, depth=2, group=group).double()
    ref.load_state_dict({k: v for k, v in m.state_dict().items()
                         if "relaxed_weights" not in k}, strict=False)
    assert torch.allclose(m(X), ref(X), atol=1e-10)  # constant w: the rotation-relaxed layer


@pytest.mark.parametrize("group", ["C4", "D4"])
@pytest.mark.parametrize("relax", ["translation", "both"])
def test_steer_exactly_equivariant_at_init(relax, group):
    m = _model(relax, group, name="relaxed_steer_unet")
    assert not torch.allclose(m(X), X[:, -1])  # not a trivial (persistence) network
    assert _err(m, X) < 1e-10
    assert m.equivariance_penalty().item() == 0.0
    assert (m.config["relax"], m.config["num_banks"], m.config["grid"]) == (relax, 2, [H, H])


@pytest.mark.parametrize("relax", ["translation", "both"])
def test_steer_layer_with_constant_w_is_the_rotation_layer_of_the_mean_coefficients(relax):
    """y = sum_l w_l [f * K_l] with w_l = 1/L is one relaxed steerable conv whose
    coefficients are the banks' mean, also after delta moved (kernel-position relaxation)."""
    torch.manual_seed(1)
    g = get_group("C4")
    layer = RelaxedSteerableConv(g, 2, 3, relax=relax, num_banks=3, grid=(8, 8)).double()
    ref = RelaxedSteerableConv(g, 2, 3).double()
    with torch.no_grad():
        if layer.delta is not None:
            layer.delta.normal_()
        layer.bias.normal_()
        layer.relaxed_weights.fill_(1 / 3)  # exactly, in float64 (it was drawn in float32)
        ref.weight.copy_(layer.weight.mean(0))
        ref.delta.copy_(torch.zeros_like(ref.delta) if layer.delta is None
                        else layer.delta.mean(0))
        ref.bias.copy_(layer.bias)
    x = torch.randn(2, 2 * 4, 8, 8, dtype=torch.float64)
    assert torch.allclose(layer(x), ref(x), atol=1e-10)
    assert torch.allclose(layer.expand_filter(), ref.expand_filter(), atol=1e-12)
    assert layer.weight.shape[0] == 3 and layer.relaxed_weights.shape == (3, 8, 8)
    # bank scale: their mean has the strict layer's initial scale (within sampling noise)
    fresh = RelaxedSteerableConv(g, 16, 16, relax=relax, num_banks=4, grid=(8, 8))
    strict = RelaxedSteerableConv(g, 16, 16)
    ratio = fresh.weight.mean(0).std() / strict.weight.std()
    assert 0.8 < ratio.item() < 1.25


def _set_weights(m, fn):
    with torch.no_grad():
        for w in _live_mixing_maps(m):
            n = w.shape[-1]
            i = torch.arange(n, dtype=w.dtype)
            yy, xx = torch.meshgrid(i, i, indexing="ij")
            w.copy_(w + fn(yy - (n - 1) / 2, xx - (n - 1) / 2).expand_as(w))


@pytest.mark.parametrize("name", MODELS)
def test_a_rotation_invariant_position_pattern_keeps_the_symmetry(name):
    """w_l(x) radial about the box centre: the model still commutes with every rotation
    and mirror about that centre; a left-right ramp breaks it."""
    m = _model("translation", "D4", name=name)
    _set_weights(m, lambda y, x: 0.2 * (x ** 2 + y ** 2) / 64)
    assert m.equivariance_penalty().item() > 0
    assert _err(m, X) < 1e-10
    m = _model("translation", "D4", name=name)
    _set_weights(m, lambda y, x: 0.3 * x / 8)
    assert _err(m, X) > 1e-3


@pytest.mark.parametrize("name", MODELS)
def test_both_perturbed_breaks_symmetry_penalty_grid_export(name):
    m = _model("both", name=name)
    with torch.no_grad():
        for w in _live_mixing_maps(m):
            w.add_(0.2 * torch.randn_like(w))
    assert _err(m, X) > 1e-3
    pen = m.equivariance_penalty()
    assert pen.item() > 0
    pen.backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if "relaxed" in n)
    per_g = (4,) if name == "relaxed_gconv_unet" else ()
    assert {tuple(w.shape) for w in _mixing_maps(m)} == \
        {(2, *per_g, H, H), (2, *per_g, H // 2, H // 2)}
    ex = m.export()  # L expanded kernels in one Conv2d + the fixed mixing map
    assert torch.allclose(ex(X), m(X), atol=1e-10)
    assert not any(hasattr(mod, "expand_filter") for mod in ex.modules())
    rebuilt = build_model(**{**m.config, "exported": True}).double()
    rebuilt.load_state_dict(ex.state_dict())
    assert torch.allclose(rebuilt(X), m(X), atol=1e-10)
    for net in (m, ex):
        with pytest.raises(ValueError, match="built for a 16x16 grid"):
            net(torch.randn(1, 2, 3, 2 * H, 2 * H, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs grid"):
        build_model(name, T_in=2, hidden=2, depth=2, relax="both")
    with pytest.raises(ValueError, match="relax must be one of"):
        build_model(name, T_in=2, hidden=2, depth=2, relax="scale")


def test_steer_both_relaxes_rotation_inside_the_banks_and_translation_between_them():
    """Only the kernel-position coefficients moved (w constant): rotation symmetry breaks,
    translation symmetry holds in the interior; the relaxation summary reports both
    parts. The rotation-relaxed default keeps the config it had before the option."""
    from evaluate.equivariance import relaxation_summary
    m = _model("both", name="relaxed_steer_unet")
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, RelaxedSteerableConv):
                mod.delta.normal_(0.0, 0.3)
    assert _err(m, X) > 1e-3
    layer = next(mod for mod in m.modules() if isinstance(mod, RelaxedSteerableConv))
    x = torch.randn(1, layer.in_channels, H, H, dtype=torch.float64)
    with torch.no_grad():  # one layer: a shift moves its response along (interior)
        y0, y1 = layer(x), layer(torch.roll(x, 3, dims=-1))
        assert torch.allclose(torch.roll(y0, 3, dims=-1)[..., 4:-4], y1[..., 4:-4],
                              atol=1e-10)
        layer.relaxed_weights.add_(0.2 * torch.randn_like(layer.relaxed_weights))
        y0, y1 = layer(x), layer(torch.roll(x, 3, dims=-1))
        assert not torch.allclose(torch.roll(y0, 3, dims=-1)[..., 4:-4], y1[..., 4:-4],
                                  atol=1e-3)
    kinds = {(s.kind, s.name.endswith(".coefficients")) for s in relaxation_summary(m)}
    assert kinds == {("translation", False), ("steerable", True)}
    assert {s.relative_deviation > 0 for s in relaxation_summary(m)  # 1x1 convs: always 0
            if s.kind == "steerable" and s.shape[-1] > 1} == {True}
    default = build_model("relaxed_steer_unet", T_in=2, hidden=2, depth=2)
    assert not {"relax", "num_banks", "grid"} & set(default.config)


@pytest.mark.parametrize("n", [32, 64])
@pytest.mark.parametrize("name,opts", [("relaxed_conv_unet", {}), ("rpp_unet", {}),
                                       ("relaxed_gconv_unet", {"relax": "both"}),
                                       ("relaxed_steer_unet", {"relax": "both"})])
def test_issue12_models_at_32_and_64(tmp_path, n, name, opts):
    """Forward, backward, export, checkpoint round trip and (for the position-dependent
    ones) the refusal of another grid, on the grids of the CPU and the paper scale."""
    from surrogate.checkpoint import load_model, save
    from surrogate.registry import needs_grid
    torch.manual_seed(0)
    grid = (n, n) if needs_grid(name, opts) else None
    m = build_model(name, T_in=2, hidden=2, depth=3, grid=grid, **opts)
    with torch.no_grad():  # move every relaxation away from its initial value
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 2, 3, n, n)
    y = m(x)
    (y.square().mean() + m.equivariance_penalty()).backward()
    assert y.shape == (2, 3, n, n) and all(p.grad is not None for p in m.parameters())
    assert torch.allclose(m.export()(x), y, atol=1e-5)
    back = load_model(save(m, tmp_path / "m.pt"))
    assert torch.equal(back(x), y)
    if grid is not None:
        with pytest.raises(ValueError, match=f"built for a {n}x{n} grid"):
            m(torch.randn(1, 2, 3, n // 2, n // 2))
