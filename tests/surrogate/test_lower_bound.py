"""The per-channel lower bound of a predicted frame (``FieldUNet.lower_bound``): pointwise
on scalars, so it keeps exact equivariance; refused on vector components; kept by export
and checkpoints; absent (-inf) in checkpoints written before it."""

import math

import pytest
import torch

from surrogate import build_model
from surrogate.checkpoint import model_from_checkpoint, read_checkpoint, save

from surrogate_helpers import equivariance_error

TINY = dict(T_in=2, hidden=2, depth=2)
X = torch.randn(3, 2, 3, 16, 16, dtype=torch.float64,
                generator=torch.Generator().manual_seed(0))


def _bounded(name, seed=0):
    torch.manual_seed(seed)
    m = build_model(name, **TINY).double()
    with torch.no_grad():  # a head that moves the density well below the bound
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    free = m(X)
    m.set_lower_bound([-math.inf, -math.inf, 0.25])
    return m, free


@pytest.mark.parametrize("name", ["unet", "gconv_unet", "steer_unet", "combo_unet"])
def test_the_bound_clamps_the_scalar_only_and_keeps_equivariance(name):
    m, free = _bounded(name)
    y = m(X)
    assert (free[:, 2] < 0.25).any()                       # the bound is active somewhere
    assert torch.equal(y[:, 2], free[:, 2].clamp_min(0.25))
    assert torch.equal(y[:, :2], free[:, :2])            # vectors untouched
    if name not in ("unet", "combo_unet"):  # (combo's plain half is not equivariant)
        assert equivariance_error(m, X) < 1e-10
    ex = m.export()                                       # export keeps it
    assert torch.allclose(ex(X), y, atol=1e-10)


def test_a_vector_component_cannot_be_bounded_and_values_are_checked():
    m = build_model("gconv_unet", **TINY)
    with pytest.raises(ValueError, match="vector field cannot have a lower bound"):
        m.set_lower_bound([0.0, -math.inf, 0.0])
    with pytest.raises(ValueError, match="needs 3 values"):
        m.set_lower_bound([0.0, 0.0])
    with pytest.raises(ValueError, match="needs 3 values"):
        m.set_lower_bound([-math.inf, -math.inf, math.nan])


def test_checkpoint_round_trip_and_checkpoints_from_before_the_bound(tmp_path):
    m, _ = _bounded("gconv_unet")
    m = m.float()
    back = model_from_checkpoint(read_checkpoint(save(m, tmp_path / "b.pt")))
    x = X.float()
    assert torch.equal(back(x), m(x)) and back.lower_bound[2].item() == 0.25
    # an old checkpoint: its state dict has no lower_bound -> no bound at all
    free = build_model("gconv_unet", **TINY)
    state = {k: v for k, v in free.state_dict().items() if k != "lower_bound"}
    old = build_model("gconv_unet", **TINY)
    old.set_lower_bound([-math.inf, -math.inf, 5.0])
    old.load_state_dict(state)
    assert torch.isinf(old.lower_bound).all() and torch.equal(old(x), free(x))


def test_normalization_holds_the_bound_in_physical_units_and_round_trips():
    from surrogate import FieldLayout
    from surrogate.normalization import Normalization
    lay = FieldLayout()
    norm = Normalization(lay, (2.0, 2.0, 4.0), (0.0, 0.0, 1.0),
                         lower_bound=(-math.inf, -math.inf, 0.0))
    assert norm.normalized_lower_bound == (-math.inf, -math.inf, -0.25)
    d = norm.to_dict()
    assert d["lower_bound"] == [None, None, 0.0]          # JSON has no infinity
    assert Normalization.from_dict(d) == norm
    x = torch.full((1, 1, 3, 2, 2), -1.0)
    assert norm.apply_lower_bound(x)[0, 0, :, 0, 0].tolist() == [-1.0, -1.0, 0.0]
    assert Normalization(lay, (1.0,) * 3, (0.0,) * 3).normalized_lower_bound == \
        (-math.inf,) * 3
    with pytest.raises(ValueError, match="vector field cannot"):
        Normalization(lay, (1.0,) * 3, (0.0,) * 3, lower_bound=(0.0, -math.inf, 0.0))


def test_the_gradient_passes_straight_through_the_bound():
    """Where a prediction is below the bound the loss still pulls it (towards a truth
    above the bound): the gradient is that of the unbounded prediction."""
    from surrogate.nets.unet import apply_lower_bound
    y = torch.tensor([[[[-1.0, 2.0]]]], requires_grad=True)
    out = apply_lower_bound(y, torch.tensor([0.0]))
    assert out.tolist() == [[[[0.0, 2.0]]]]
    ((out - 1.0) ** 2).sum().backward()
    assert y.grad.tolist() == [[[[-2.0, 2.0]]]]   # d/dy (max(y,0) - 1)^2 taken at max(y,0)
