"""Groups, the one group action on fields, and the regular-field lift/projection/norm."""

import itertools

import numpy as np
import pytest
import torch

from surrogate.groups import GROUPS, get_group
from surrogate.layers.regular import FieldLift, FieldProjection, RegularGroupNorm
from surrogate.symmetry import (FieldLayout, transform_fields, transform_grid,
                                transform_regular)

ALL_GROUPS = ["trivial", "C4", "D4", "C8"]
D4 = get_group("D4")
LAYOUTS = [FieldLayout(), FieldLayout(("density", "u", "v")),
           FieldLayout(("a", "u", "v", "s", "p", "q"), (("u", "v"), ("p", "q")))]


@pytest.mark.parametrize("name", ALL_GROUPS)
def test_group_axioms(name):
    g = get_group(name)
    els = g.elements
    assert len(els) == g.order == len(set(els))
    assert [g.index(a) for a in els] == list(range(g.order))
    e = (0, 0)
    for a in els:
        assert g.compose(e, a) == a == g.compose(a, e)
        assert g.compose(a, g.inverse(a)) == e == g.compose(g.inverse(a), a)
    for a, b in itertools.product(els, els):
        ab = g.compose(a, b)
        assert ab in els
        # the matrix representation is a homomorphism
        torch.testing.assert_close(g.matrix(ab), g.matrix(a) @ g.matrix(b))
        for c in els:
            assert g.compose(ab, c) == g.compose(a, g.compose(b, c))


@pytest.mark.parametrize("name", ALL_GROUPS)
def test_left_regular_permutation_is_an_action(name):
    g = get_group(name)
    p = g.left_regular_permutation
    f = torch.randn(g.order)
    for a, b in itertools.product(g.elements, g.elements):
        # (a (b f))[h] = (b f)[a^-1 h] = f[b^-1 a^-1 h] = ((ab) f)[h]
        ab = g.index(g.compose(a, b))
        torch.testing.assert_close(f[p[g.index(b)]][p[g.index(a)]], f[p[ab]])
    torch.testing.assert_close(g.directions,
                               torch.stack([g.matrix(h)[:, 0] for h in g.elements]))


def test_get_group_unknown():
    with pytest.raises(ValueError, match="C4"):
        get_group("C5")
    assert set(GROUPS) >= {"trivial", "C4", "D4", "C8"}


@pytest.mark.parametrize("n", [5, 6])
@pytest.mark.parametrize("g", D4.elements)
def test_transform_grid_moves_delta_to_Mg_p(g, n):
    """A delta at pixel p (coordinates about the grid centre, x right, y up with the
    row index) ends up at M_g p."""
    c = (n - 1) / 2
    m = D4.matrix(g)
    for i, j in [(0, 1), (1, n - 1), (n - 2, 2)]:
        a = torch.zeros(n, n)
        a[i, j] = 1.0
        b = transform_grid(a, *_kf(g))
        (i2, j2), = torch.nonzero(b).tolist()
        p = torch.tensor([j - c, i - c], dtype=torch.float64)
        q = m @ p
        assert (j2 - c, i2 - c) == pytest.approx((q[0].item(), q[1].item()), abs=1e-9)


def _kf(g, group=D4):
    """``(quarter turns, flip)`` of a grid-exact element, for the transform functions."""
    return group.quarter_turns(g), bool(g[1])


@pytest.mark.parametrize("g", D4.elements)
def test_numpy_and_torch_actions_agree(g):
    from simulate.symmetry import transform_fields as np_transform

    rng = np.random.default_rng(0)
    u, v, d = (rng.standard_normal((2, 6, 6)).astype(np.float32) for _ in range(3))
    nu, nv, nd = np_transform(u, v, d, k=g[0], flip=bool(g[1]))
    x = torch.from_numpy(np.stack([u, v, d], axis=1))  # (2, C, 6, 6)
    y = transform_fields(x, FieldLayout(), *_kf(g))
    np.testing.assert_array_equal(y.numpy(), np.stack([nu, nv, nd], axis=1))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_transform_fields_is_a_group_action(layout):
    x = torch.randn(2, layout.num_channels, 4, 4)
    for a, b in itertools.product(D4.elements, D4.elements):
        ab = D4.compose(a, b)
        lhs = transform_fields(transform_fields(x, layout, *_kf(b)), layout, *_kf(a))
        torch.testing.assert_close(lhs, transform_fields(x, layout, *_kf(ab)))
    # vectors really rotate: one quarter turn maps (u, v) -> (-v, u) at the moved point
    y = transform_fields(x, layout, 1, False)
    for i, j in layout.vector_indices:
        torch.testing.assert_close(y[:, i], -transform_grid(x[:, j], 1))
        torch.testing.assert_close(y[:, j], transform_grid(x[:, i], 1))


@pytest.mark.parametrize("name", ["C4", "D4"])
def test_transform_regular_is_a_group_action(name):
    g = get_group(name)
    x = torch.randn(1, 3 * g.order, 4, 4)
    for a, b in itertools.product(g.elements, g.elements):
        lhs = transform_regular(transform_regular(x, g, b), g, a)
        torch.testing.assert_close(lhs, transform_regular(x, g, g.compose(a, b)))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ALL_GROUPS)
def test_lift_projection(name, layout):
    g = get_group(name)
    lift, proj = FieldLift(layout, g).double(), FieldProjection(layout, g).double()
    x = torch.randn(2, layout.num_channels, 6, 6, dtype=torch.float64)
    z = lift(x)
    assert z.shape == (2, lift.out_fields * g.order, 6, 6)
    torch.testing.assert_close(proj(z), x)  # projection o lift = identity
    if g.order == 1:
        return
    z2 = torch.randn_like(z)
    for e in g.grid_elements:
        torch.testing.assert_close(lift(transform_fields(x, layout, *_kf(e, g))),
                                   transform_regular(z, g, e))
        torch.testing.assert_close(proj(transform_regular(z2, g, e)),
                                   transform_fields(proj(z2), layout, *_kf(e, g)))


@pytest.mark.parametrize("name", ["C4", "D4"])
def test_regular_group_norm_equivariant(name):
    g = get_group(name)
    norm = RegularGroupNorm(g, 6, num_groups=3).double()
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 6 * g.order, 4, 4, dtype=torch.float64)
    for e in g.elements:
        torch.testing.assert_close(norm(transform_regular(x, g, e)),
                                   transform_regular(norm(x), g, e))
