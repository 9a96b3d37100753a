"""relaxed_conv_unet: the paper's relaxed translation group convolution."""

import pytest
import torch

from surrogate import build_model
from surrogate.layers.relaxed_translation_conv import RelaxedTranslationConv
from surrogate.groups import get_group

H = 16


def _relaxed(**kw):
    torch.manual_seed(0)
    return build_model("relaxed_conv_unet", T_in=2, hidden=4, depth=2, norm_groups=1,
                       grid=(H, H), **kw).double()


def test_at_init_it_is_the_plain_network_with_the_mean_kernels():
    rel = _relaxed()
    plain = build_model("unet", T_in=2, hidden=4, depth=2, norm_groups=1).double()
    rs = rel.state_dict()
    new = {}
    for k, v in plain.state_dict().items():
        r = rs[k]
        if r.shape == v.shape:
            new[k] = r
        else:  # banks (L, o, i, k, k) -> the plain kernel (o, i, 1, k, k): sum_l w_l Psi_l
            new[k] = r.mean(0).unsqueeze(2)
    plain.load_state_dict(new)
    x = torch.randn(3, 2, 3, H, H, dtype=torch.float64)
    assert torch.allclose(rel(x), plain(x), atol=1e-12, rtol=0)
    assert rel.equivariance_penalty().item() == 0.0


def _shift(x, d):
    return torch.roll(x, shifts=d, dims=-1)


def test_translation_equivariance_holds_at_init_and_breaks_when_w_varies():
    torch.manual_seed(1)
    layer = RelaxedTranslationConv(get_group("trivial"), 2, 3, 3, num_banks=3,
                                   grid=(H, H)).double()
    x = torch.zeros(1, 2, H, H, dtype=torch.float64)
    x[..., 5:10, 4:8] = torch.randn(2, 5, 4, dtype=torch.float64)  # away from the borders
    inner = (slice(None), slice(None), slice(2, H - 2), slice(2, H - 4))

    def err():
        return (layer(_shift(x, 2)) - _shift(layer(x), 2))[inner].abs().max().item()
    assert err() < 1e-12
    with torch.no_grad():
        layer.relaxed_weights.add_(0.3 * torch.randn_like(layer.relaxed_weights))
    assert err() > 1e-3
    pen = layer.equivariance_penalty()
    assert pen.item() > 0
    pen.backward()
    assert layer.relaxed_weights.grad.abs().sum() > 0


def test_model_penalty_grid_export_and_refusals():
    rel = _relaxed(alpha=1.0)
    with torch.no_grad():
        for name, w in rel.relaxation_weights().items():
            w.add_(0.1 * torch.randn_like(w))
    assert rel.equivariance_penalty().item() > 0
    shapes = {tuple(w.shape) for w in rel.relaxation_weights().values()}
    assert shapes == {(2, H, H), (2, H // 2, H // 2)}  # one map per U-Net level
    x = torch.randn(2, 2, 3, H, H, dtype=torch.float64)
    ex = rel.export()
    assert torch.allclose(ex(x), rel(x), atol=1e-12)
    with pytest.raises(ValueError, match="built for a 16x16 grid"):
        rel(torch.randn(1, 2, 3, 2 * H, 2 * H, dtype=torch.float64))
    with pytest.raises(ValueError, match="built for a 16x16 grid"):
        ex(torch.randn(1, 2, 3, 2 * H, 2 * H, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs grid"):
        build_model("relaxed_conv_unet", T_in=2, hidden=4, depth=2)
    with pytest.raises(ValueError, match="divisible"):
        build_model("relaxed_conv_unet", T_in=2, hidden=4, depth=3, grid=(18, 18))


def test_checkpoint_round_trip(tmp_path):
    from surrogate.checkpoint import load_model, save
    rel = _relaxed()
    with torch.no_grad():
        for w in rel.relaxation_weights().values():
            w.add_(0.1 * torch.randn_like(w))
    path = save(rel.float(), tmp_path / "m.pt")
    back = load_model(path)
    x = torch.randn(1, 2, 3, H, H)
    assert torch.equal(back(x), rel(x))
    assert back.config["grid"] == [H, H]
