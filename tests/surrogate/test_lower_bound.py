"""The lower bound of forecast frames (``Normalization.lower_bound``): density
that is never negative in the training data is never negative in a forecast. Pointwise on
scalars, so a bounded equivariant surrogate stays equivariant; refused on vectors;
checkpoints from before it have none."""

import math

import pytest
import torch

from surrogate import FieldLayout, build_model
from surrogate.forecast import Surrogate
from surrogate.normalization import Normalization
from surrogate.symmetry import transform_fields

LAY = FieldLayout()
BOUND = (-math.inf, -math.inf, 0.0)


def test_normalization_holds_the_bound_in_physical_units_and_round_trips():
    norm = Normalization(LAY, (2.0, 2.0, 4.0), (0.0, 0.0, 1.0), lower_bound=BOUND)
    d = norm.to_dict()
    assert d["lower_bound"] == [None, None, 0.0]          # JSON has no infinity
    assert Normalization.from_dict(d) == norm
    d.pop("lower_bound")                                   # a checkpoint from before
    assert Normalization.from_dict(d).lower_bound is None
    x = torch.full((1, 1, 3, 2, 2), -1.0)
    assert norm.apply_lower_bound(x)[0, 0, :, 0, 0].tolist() == [-1.0, -1.0, 0.0]
    with pytest.raises(ValueError, match="vector field cannot"):
        Normalization(LAY, (1.0,) * 3, (0.0,) * 3, lower_bound=(0.0, -math.inf, 0.0))
    with pytest.raises(ValueError, match="needs 3 values"):
        Normalization(LAY, (1.0,) * 3, (0.0,) * 3, lower_bound=(0.0, math.nan))


def _surrogate(bound, seed=0):
    torch.manual_seed(seed)
    net = build_model("gconv_unet", T_in=2, hidden=2, depth=2)
    with torch.no_grad():  # a head that drives the density below 0 somewhere
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    norm = Normalization(LAY, (1.0, 1.0, 0.5), (0.0, 0.0, 0.4), lower_bound=bound)
    return Surrogate(net, norm)


def test_forecasts_respect_the_bound_exactly_and_stay_equivariant():
    hist = torch.rand(3, 2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    free = _surrogate(None).rollout(hist, 4)
    sur = _surrogate(BOUND)
    pred = sur.rollout(hist, 4)
    assert (free[:, :, 2] < 0).any() and pred[:, :, 2].min().item() >= 0.0
    # the frames are bounded, the model runs on from its own predictions: every step
    # is the unbounded rollout clamped, vectors untouched
    assert torch.equal(pred[:, :, 2], free[:, :, 2].clamp_min(0.0))
    assert torch.equal(pred[:, :, :2], free[:, :, :2])
    for k in (1, 2, 3):  # the C4 model's rollout commutes with quarter turns, bounded
        g_hist = transform_fields(hist, LAY, k=k, channel_dim=-3)
        g_pred = transform_fields(pred, LAY, k=k, channel_dim=-3)
        assert torch.allclose(sur.rollout(g_hist, 4), g_pred, atol=1e-4)  # float32
