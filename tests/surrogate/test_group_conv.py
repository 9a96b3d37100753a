"""Group convolution, relaxed group convolution and U-Net blocks: equivariance in float64."""

import pytest
import torch
import torch.nn.functional as F

from surrogate.groups import get_group
from surrogate.layers.blocks import Downsample, ResidualBlock, Upsample, concat_fields
from surrogate.layers.group_conv import GroupConv
from surrogate.layers.relaxed_group_conv import RelaxedGroupConv
from surrogate.symmetry import transform_regular

GROUPS = ["C4", "D4"]


def equivariance_error(fn, group, x):
    """Largest relative error ``|f(g x) - g f(x)| / |g f(x)|`` over the group."""
    y = fn(x)
    errs = []
    for g in group.elements:
        gy = transform_regular(y, group, g)
        errs.append(((fn(transform_regular(x, group, g)) - gy).norm() / gy.norm()).item())
    return max(errs)


def regular_input(group, fields, n=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, fields * group.order, n, n, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("name", GROUPS)
def test_group_conv_equivariant(name, kernel_size):
    g = get_group(name)
    torch.manual_seed(0)
    conv = GroupConv(g, 3, 2, kernel_size).double()
    with torch.no_grad():
        conv.bias.normal_()
    x = regular_input(g, 3)
    assert conv(x).shape == (2, 2 * g.order, 8, 8)
    assert equivariance_error(conv, g, x) < 1e-12
    assert conv.equivariance_penalty().item() == 0.0 and conv.relaxation_weights() == {}


@pytest.mark.parametrize("name", GROUPS)
def test_group_conv_filter_formula(name):
    """W[o, g, i, h, y] = Psi[o, i, g^-1 h, g^-1 y], checked element by element."""
    from surrogate.symmetry import transform_grid

    g = get_group(name)
    conv = GroupConv(g, 2, 3, 3)
    n = g.order
    w = conv.expand_filter().reshape(3, n, 2, n, 3, 3)
    for a in g.elements:
        ai = g.index(a)
        moved = transform_grid(conv.weight, g.quarter_turns(a), bool(a[1]))
        for h in g.elements:
            src = g.index(g.compose(g.inverse(a), h))
            torch.testing.assert_close(w[:, ai, :, g.index(h)], moved[:, :, src])


def test_trivial_group_is_plain_conv():
    conv = GroupConv(get_group("trivial"), 3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight[:, :, 0], conv.bias, padding=1))


def test_c8_rejected():
    for cls in (GroupConv, RelaxedGroupConv):
        with pytest.raises(ValueError, match="steerable"):
            cls(get_group("C8"), 1, 1, 3)


@pytest.mark.parametrize("name", GROUPS)
def test_group_conv_export(name):
    g = get_group(name)
    for conv in (GroupConv(g, 2, 3, 3), RelaxedGroupConv(g, 2, 3, 3, num_banks=3)):
        with torch.no_grad():
            conv.bias.normal_()
        x = torch.randn(2, 2 * g.order, 8, 8)
        torch.testing.assert_close(conv.export()(x), conv(x))


@pytest.mark.parametrize("num_banks", [1, 2])
@pytest.mark.parametrize("name", GROUPS)
def test_relaxed_group_conv(name, num_banks):
    g = get_group(name)
    torch.manual_seed(0)
    conv = RelaxedGroupConv(g, 3, 2, 3, num_banks=num_banks).double()
    w = conv.relaxation_weights()["w"]
    assert w.shape == (num_banks, g.order)
    torch.testing.assert_close(w, torch.full_like(w, 1.0 / num_banks))
    x = regular_input(g, 3)
    # exactly equivariant at initialisation, zero penalty
    assert equivariance_error(conv, g, x) < 1e-12
    assert conv.equivariance_penalty().item() == 0.0
    # perturbed combination weights break it measurably
    with torch.no_grad():
        w.add_(0.1 * torch.randn_like(w))
    assert equivariance_error(conv, g, x) > 1e-3
    pen = conv.equivariance_penalty()
    assert pen.dim() == 0 and pen.item() > 0
    pen.backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_relaxed_penalty_value_and_reduction():
    g = get_group("C4")
    conv = RelaxedGroupConv(g, 1, 1, 3, num_banks=2)
    with torch.no_grad():
        conv.relaxed_weights.copy_(torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]]))
    # bank 0: |0-1| over 3 unordered pairs, counted in both orders -> 6; bank 1: 0
    assert conv.equivariance_penalty().item() == pytest.approx(6.0)
    # a relaxed layer with w constant over g is the group conv with filter sum_l w_l Psi_l
    with torch.no_grad():
        conv.relaxed_weights.copy_(torch.tensor([[0.3] * 4, [0.7] * 4]))
    strict = GroupConv(g, 1, 1, 3)
    with torch.no_grad():
        strict.weight.copy_(0.3 * conv.weight[0] + 0.7 * conv.weight[1])
        strict.bias.copy_(conv.bias)
    x = torch.randn(1, 4, 6, 6)
    torch.testing.assert_close(conv(x), strict(x))


def test_relaxed_init_scale_matches_strict():
    g = get_group("C4")
    torch.manual_seed(0)
    strict = GroupConv(g, 32, 32, 3).expand_filter().std()
    relaxed = RelaxedGroupConv(g, 32, 32, 3, num_banks=4).expand_filter().std()
    assert 0.9 < (relaxed / strict).item() < 1.1


@pytest.mark.parametrize("name", GROUPS)
def test_blocks_equivariant(name):
    g = get_group(name)
    torch.manual_seed(0)
    block = ResidualBlock(GroupConv, g, 3, 4, 3, norm_groups=2).double()
    same = ResidualBlock(GroupConv, g, 4, 4, 3).double()
    x = regular_input(g, 3)
    assert equivariance_error(block, g, x) < 1e-12
    assert equivariance_error(lambda t: same(block(t)), g, x) < 1e-12
    assert equivariance_error(Downsample(), g, x) < 1e-12
    for mode in Upsample.MODES:
        assert equivariance_error(Upsample(mode), g, x) < 1e-12
    assert equivariance_error(lambda t: concat_fields(t, 2 * t), g, x) < 1e-12
    with pytest.raises(ValueError, match="even"):
        Downsample()(torch.zeros(1, 4, 5, 5))
    with pytest.raises(ValueError, match="bicubic"):
        Upsample("bicubic")
