"""The training recipe's pieces in the surrogate: delta normalisation (round trip,
rotation invariance), the residual's delta scale (equivariance kept), the
persistence-initialised head, and old checkpoints without a delta scale."""

import numpy as np
import pytest
import torch

from surrogate import FieldLayout, build_model
from surrogate.checkpoint import model_from_checkpoint, read_checkpoint, save
from surrogate.normalization import Normalization
from surrogate.symmetry import transform_fields

MODELS = ["unet", "gconv_unet", "relaxed_gconv_unet", "steer_unet", "relaxed_steer_unet"]
TINY = dict(T_in=2, hidden=2, depth=2)
LAYOUT = FieldLayout()


def _plume(seed=0, t=6, n=16):
    """(sims, T, C, H, W) smooth fields with a drift, u/v of different sizes."""
    g = np.random.default_rng(seed)
    y, x = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    out = np.zeros((3, t, 3, n, n))
    for s in range(3):
        for k in range(t):
            ph = 0.3 * k * (s + 1) + g.uniform(0, 0.1)
            out[s, k, 0] = 2.0 * np.sin(0.4 * x + ph) * np.cos(0.2 * y)
            out[s, k, 1] = 0.5 * np.cos(0.3 * y - ph)
            out[s, k, 2] = 1 + np.exp(-((x - 8 - k) ** 2 + (y - 5) ** 2) / 9)
    return out


def test_delta_scale_is_the_rms_of_one_step_changes_and_round_trips():
    a = _plume()
    d = np.diff(a, axis=1)
    scale = Normalization.fit_delta_scale(d, LAYOUT, channel_dim=2)
    vec = np.sqrt((np.mean(d[:, :, 0] ** 2) + np.mean(d[:, :, 1] ** 2)) / 2)
    assert scale[0] == scale[1] == pytest.approx(vec)          # one scale per vector field
    assert scale[2] == pytest.approx(np.sqrt(np.mean(d[:, :, 2] ** 2)))  # never shifted
    norm = Normalization.fit(a, LAYOUT, channel_dim=2)
    norm = Normalization(LAYOUT, norm.scale, norm.shift, delta_scale=scale)
    back = Normalization.from_dict(norm.to_dict())
    assert back == norm and back.delta_gain == pytest.approx(
        tuple(s / c for s, c in zip(scale, norm.scale)))
    # a checkpoint of the time before delta scales reads as "no delta scale"
    old = norm.to_dict()
    old.pop("delta_scale")
    assert Normalization.from_dict(old).delta_scale is None
    with pytest.raises(ValueError, match="one delta scale"):
        Normalization(LAYOUT, norm.scale, norm.shift, delta_scale=(1.0, 2.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        Normalization(LAYOUT, norm.scale, norm.shift, delta_scale=(1.0, 1.0, 0.0))


@pytest.mark.parametrize("k,flip", [(1, False), (2, False), (3, False), (1, True)])
def test_delta_scale_is_invariant_under_the_group(k, flip):
    """Fitting on rotated / mirrored data gives the same scales (so the normalised
    differences of g.x are g applied to the normalised differences of x)."""
    a = torch.from_numpy(_plume())
    ga = torch.stack([transform_fields(a[s], LAYOUT, k=k, flip=flip) for s in range(3)])
    s1 = Normalization.fit_delta_scale(np.diff(a.numpy(), axis=1), LAYOUT, channel_dim=2)
    s2 = Normalization.fit_delta_scale(np.diff(ga.numpy(), axis=1), LAYOUT, channel_dim=2)
    assert s1 == pytest.approx(s2, rel=1e-12)


def _frames(model, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, model.T_in, 3, n, n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("name", MODELS)
def test_persistence_init_predicts_the_last_frame_exactly(name):
    torch.manual_seed(0)
    model = build_model(name, **TINY).double()
    model.set_delta_scale([0.3, 0.3, 0.05])
    x = _frames(model)
    assert not torch.equal(model(x), x[:, -1])
    model.init_persistence()
    assert torch.equal(model(x), x[:, -1])
    # the head still learns: its gradient is not zero
    model(x).square().sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.head.parameters())


@pytest.mark.parametrize("name", ["gconv_unet", "steer_unet"])
def test_delta_scale_keeps_strict_models_equivariant(name):
    torch.manual_seed(0)
    model = build_model(name, **TINY).double()
    model.set_delta_scale([0.2, 0.2, 0.7])
    x = _frames(model)
    for k in (1, 2, 3):
        gx = torch.stack([transform_fields(x[b], LAYOUT, k=k) for b in range(2)])
        want = transform_fields(model(x), LAYOUT, k=k)
        torch.testing.assert_close(model(gx), want, rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError, match="both components"):
        model.set_delta_scale([0.2, 0.3, 0.7])


def test_delta_scale_scales_the_residual_only():
    torch.manual_seed(0)
    model = build_model("unet", **TINY).double()
    x = _frames(model)
    base = model(x) - x[:, -1]
    model.set_delta_scale([2.0, 2.0, 0.5])
    torch.testing.assert_close(model(x) - x[:, -1],
                               base * torch.tensor([2.0, 2.0, 0.5]).view(1, 3, 1, 1).double())


def test_checkpoint_without_delta_scale_loads_as_plain_residual(tmp_path):
    """Weights saved before the buffer existed: the model predicts x[t] + out."""
    torch.manual_seed(0)
    model = build_model("gconv_unet", **TINY)
    path = save(model, tmp_path / "m.pt")
    ckpt = read_checkpoint(path)
    ckpt["state_dict"].pop("delta_scale")
    restored = model_from_checkpoint(ckpt)
    assert torch.equal(restored.delta_scale, torch.ones(3))
    x = _frames(model).float()
    with torch.no_grad():
        torch.testing.assert_close(restored(x), model(x))
