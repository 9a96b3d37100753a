"""Steerable and relaxed steerable convolutions: basis, conventions, equivariance, export."""

from __future__ import annotations

import math

import pytest
import torch

from surrogate.groups import get_group
from surrogate.layers.relaxed_steerable import RelaxedSteerableConv
from surrogate.layers.steerable import (SteerableConv, escnn_basis_converted,
                                        escnn_gspace, escnn_index, steerable_basis)
from surrogate.symmetry import transform_grid, transform_regular

GROUPS = ["C4", "D4", "C8"]
N_BASIS_K3 = {"C4": 24, "D4": 48, "C8": 48}


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _max_equivariance_error(layer, group, x) -> float:
    with torch.no_grad():
        y = layer(x)
        return max(_rel_err(layer(transform_regular(x, group, g)),
                            transform_regular(y, group, g)) for g in group.grid_elements)


@pytest.mark.parametrize("name", GROUPS)
def test_basis_shape_rank_and_cache(name):
    g = get_group(name)
    phi = steerable_basis(name, 3)
    assert phi.shape == (N_BASIS_K3[name], g.order, g.order, 3, 3)
    assert phi.dtype == torch.float64
    assert torch.linalg.matrix_rank(phi.flatten(1)) == phi.shape[0]
    phi.zero_()  # a copy: the cache is untouched
    assert steerable_basis(name, 3).abs().sum() > 0


@pytest.mark.parametrize("name", GROUPS)
def test_escnn_basis_already_equivariant_in_our_convention(name):
    """The exact projection only removes escnn's float32 sampling noise: the converted
    raw basis satisfies our kernel constraint to ~1e-7 for every grid-exact element."""
    group = get_group(name)
    raw = escnn_basis_converted(name, 3)
    assert _rel_err(raw, steerable_basis(name, 3)) < 1e-6
    for g in group.grid_elements:
        perm = group.left_regular_permutation[group.index(g)]
        moved = transform_grid(raw[:, perm][:, :, perm], group.quarter_turns(g), bool(g[1]))
        assert _rel_err(moved, raw) < 1e-6
    # in escnn's own element order (undo the re-indexing) the constraint fails
    inv = torch.argsort(escnn_index(group))
    esc = raw[:, inv][:, :, inv]
    g = (group.n_rotations // 4, 0)
    perm = group.left_regular_permutation[group.index(g)]
    moved = transform_grid(esc[:, perm][:, :, perm], group.quarter_turns(g))
    assert _rel_err(moved, esc) > 0.1


@pytest.mark.parametrize("name", GROUPS)
def test_steerable_equivariant_float64(name):
    torch.manual_seed(0)
    group = get_group(name)
    layer = SteerableConv(group, 2, 3).double()
    layer.bias.data.normal_()
    assert len(group.grid_elements) == (8 if name == "D4" else 4)
    x = torch.randn(2, 2 * group.order, 9, 9, dtype=torch.float64)
    assert _max_equivariance_error(layer, group, x) < 1e-10


def test_group_mapping_off_grid_c8():
    """escnn's continuous C8 basis, converted with ``escnn_index`` and ``y -> -y``, obeys
    the kernel constraint for the 45-degree turn (which the pixel grid cannot test)."""
    from escnn import nn as enn
    from escnn.nn.modules.basismanager.basisexpansion_singleblock import (
        SingleBlockBasisExpansion)

    group = get_group("C8")
    gs = escnn_gspace(group)
    ft = enn.FieldType(gs, [gs.fibergroup.regular_representation])
    conv = enn.R2Conv(ft, ft, 5, initialize=False)
    (block,) = [m for m in conv.basisexpansion.modules()
                if isinstance(m, SingleBlockBasisExpansion)]
    idx = escnn_index(group, gs)

    def ours(points):  # points (P, 2) as (x, y) in relaxflow's frame
        esc = points * torch.tensor([1.0, -1.0])
        b = block.basis.sample(esc.float())  # (P, n, |G|out, |G|in)
        return b[:, :, idx][:, :, :, idx].double()

    torch.manual_seed(0)
    p = torch.randn(64, 2, dtype=torch.float64)
    for k in (1, 3):
        a = (k, 0)
        rot = group.matrix(a)
        perm = group.left_regular_permutation[group.index(group.inverse(a))]  # h -> a h
        lhs = ours(p @ rot.T)[:, :, perm][:, :, :, perm]
        assert _rel_err(lhs, ours(p)) < 1e-5
        wrong = ours(p @ group.matrix(group.inverse(a)).T)[:, :, perm][:, :, :, perm]
        assert _rel_err(wrong, ours(p)) > 0.1  # the test can tell directions apart


@pytest.mark.parametrize("name", ["C4", "D4"])
def test_relaxed_equivariant_at_init_then_relaxed(name):
    torch.manual_seed(1)
    group = get_group(name)
    layer = RelaxedSteerableConv(group, 2, 2).double()
    x = torch.randn(2, 2 * group.order, 8, 8, dtype=torch.float64)
    assert _max_equivariance_error(layer, group, x) < 1e-10
    assert float(layer.equivariance_penalty().detach()) == 0.0
    rw = layer.relaxation_weights()
    assert rw["w"].shape == (2, 2, N_BASIS_K3[name], 3, 3)
    assert float(rw["deviation"].abs().max()) == 0.0

    with torch.no_grad():  # the equivariant part alone keeps the layer equivariant
        layer.weight.add_(0.3 * torch.randn_like(layer.weight))
    assert _max_equivariance_error(layer, group, x) < 1e-10
    assert float(layer.equivariance_penalty().detach()) == 0.0
    with torch.no_grad():  # the per-position relaxation breaks it
        layer.delta.add_(3.0 * torch.randn_like(layer.delta))
    assert _max_equivariance_error(layer, group, x) > 1e-3
    pen = layer.equivariance_penalty()
    assert pen > 0
    pen.backward()
    assert layer.delta.grad is not None and layer.delta.grad.abs().sum() > 0
    assert float(layer.relaxation_weights()["relative_deviation"]) > 0


def test_relaxed_coefficients_are_w_bar_plus_scaled_delta():
    torch.manual_seed(5)
    layer = RelaxedSteerableConv("C4", 2, 3, relax_scale=0.25).double()
    with torch.no_grad():
        layer.delta.normal_()
    w = layer.coefficients()
    assert w.shape == (3, 2, N_BASIS_K3["C4"], 3, 3)
    assert torch.allclose(w, layer.weight[..., None, None] + 0.25 * layer.delta)
    assert torch.allclose(layer.relaxation_weights()["w"], w)
    with pytest.raises(ValueError, match="relax_scale"):
        RelaxedSteerableConv("C4", 2, 3, relax_scale=0.0)


def test_relaxed_loads_a_per_position_weight_checkpoint():
    """A state dict from before the w_bar + s * delta split (one 5-D ``weight``) loads
    into the same function."""
    torch.manual_seed(6)
    layer = RelaxedSteerableConv("D4", 2, 2).double()
    with torch.no_grad():
        layer.delta.normal_()
        layer.bias.normal_()
    old = {"weight": layer.coefficients().detach().clone(), "bias": layer.bias.detach()}
    other = RelaxedSteerableConv("D4", 2, 2).double()
    other.load_state_dict(old)
    x = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(other(x), layer(x), atol=1e-12)


def test_relaxed_with_constant_w_equals_strict():
    torch.manual_seed(2)
    strict = SteerableConv("D4", 2, 3).double()
    relaxed = RelaxedSteerableConv("D4", 2, 3).double()
    with torch.no_grad():
        relaxed.weight.copy_(strict.weight)
        relaxed.bias.copy_(strict.bias)
    assert torch.allclose(relaxed.expand_filter(), strict.expand_filter(), atol=1e-14)


@pytest.mark.parametrize("cls", [SteerableConv, RelaxedSteerableConv])
def test_export_matches_forward_and_state_dict(cls):
    torch.manual_seed(3)
    layer = cls("C8", 2, 2)
    with torch.no_grad():
        layer.bias.normal_()
        if cls is RelaxedSteerableConv:
            layer.delta.add_(torch.randn_like(layer.delta))
    x = torch.randn(2, 16, 10, 10)
    conv = layer.export()
    assert isinstance(conv, torch.nn.Conv2d)
    with torch.no_grad():
        assert torch.allclose(conv(x), layer(x), atol=1e-5, rtol=1e-5)
    sd = layer.state_dict()
    assert "Phi" not in sd
    assert set(sd) == ({"weight", "delta", "bias"} if cls is RelaxedSteerableConv
                       else {"weight", "bias"})
    other = cls("C8", 2, 2)
    other.load_state_dict(sd)
    with torch.no_grad():
        assert torch.equal(other(x), layer(x))


def test_forward_backward_and_unit_variance_init():
    torch.manual_seed(4)
    group = get_group("C4")
    layer = SteerableConv(group, 8, 8)
    x = torch.randn(4, 8 * group.order, 16, 16, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape
    interior = y[..., 1:-1, 1:-1]
    assert 0.6 < float(interior.detach().std()) < 1.6
    y.square().mean().backward()
    assert layer.weight.grad is not None and x.grad is not None
    assert math.isfinite(float(layer.weight.grad.norm()))


def test_relax_scale_is_a_model_option(tmp_path):
    from surrogate import build_model, load, save
    torch.manual_seed(7)
    model = build_model("relaxed_steer_unet", hidden=2, depth=2, T_in=2, relax_scale=0.5)
    assert model.config["relax_scale"] == 0.5
    convs = [m for m in model.modules() if isinstance(m, RelaxedSteerableConv)]
    assert convs and all(c.relax_scale == 0.5 for c in convs)
    assert "relax_scale" not in build_model("steer_unet", hidden=2, depth=2, T_in=2,
                                            relax_scale=0.5).config
    with torch.no_grad():
        for c in convs:
            c.delta.normal_()
    path = save(model, tmp_path / "m.pt")
    x = torch.randn(1, 2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(load(path).model.eval()(x), model.eval()(x), atol=1e-6)
