"""clc_unet: the paper's constrained locally connected baseline: a kernel per
grid position, an ordinary convolution at initialisation, a smoothness penalty."""

import pytest
import torch
import torch.nn.functional as F

from surrogate import build_model
from surrogate.groups import get_group
from surrogate.layers.locally_connected_conv import LocallyConnectedConv, MAX_POSITION_PARAMS

H = 16


def _layer():
    torch.manual_seed(0)
    return LocallyConnectedConv(get_group("trivial"), 2, 3, 3, grid=(H, H)).double()


def test_layer_is_the_convolution_at_init_and_a_kernel_per_position_after():
    layer = _layer()
    x = torch.randn(2, 2, H, H, dtype=torch.float64)
    ref = F.conv2d(x, layer.weight, layer.bias, padding=1)
    assert torch.allclose(layer(x), ref, atol=1e-12, rtol=0)
    assert layer.equivariance_penalty().item() == 0.0
    with torch.no_grad():  # a different kernel at one position only changes that output
        layer.local_weights[5, 7].normal_()
    y = layer(x)
    diff = (y - ref).abs().sum(dim=(0, 1))
    assert diff[5, 7] > 1e-3 and diff.sum() == diff[5, 7]
    # the same as sum_y W(x)[y] f(x + y) written out at that position
    xp = F.pad(x, (1, 1, 1, 1))
    w = layer.weight + layer.local_weights[5, 7]
    direct = torch.einsum("oiyx,biyx->bo", w, xp[:, :, 5:8, 7:10]) + layer.bias
    assert torch.allclose(y[:, :, 5, 7], direct, atol=1e-12)


def test_translation_equivariance_breaks_and_penalty_is_differentiable():
    layer = _layer()
    x = torch.zeros(1, 2, H, H, dtype=torch.float64)
    x[..., 5:10, 4:8] = torch.randn(2, 5, 4, dtype=torch.float64)
    inner = (slice(None), slice(None), slice(2, H - 2), slice(2, H - 4))

    def err():
        s = lambda t: torch.roll(t, 2, dims=-1)
        return (layer(s(x)) - s(layer(x)))[inner].abs().max().item()
    assert err() < 1e-12
    with torch.no_grad():
        layer.local_weights.add_(0.3 * torch.randn_like(layer.local_weights))
    assert err() > 1e-3
    pen = layer.equivariance_penalty()
    assert pen.item() > 0
    pen.backward()
    assert layer.local_weights.grad.abs().sum() > 0
    assert layer.weight.grad is None  # Psi cancels in the differences


@pytest.mark.parametrize("n", [32, 64])
def test_model_forward_backward_export_grid_and_size_limit(n):
    torch.manual_seed(0)
    m = build_model("clc_unet", T_in=2, hidden=2, depth=3, grid=(n, n), alpha=1.0)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, LocallyConnectedConv):
                mod.local_weights.normal_(0, 0.01)
    x = torch.randn(2, 2, 3, n, n)
    (m(x).square().mean() + m.equivariance_penalty()).backward()
    assert all(p.grad is not None for p in m.parameters())
    maps = m.relaxation_weights()
    assert {tuple(w.shape[1:]) for w in maps.values()} == {(n, n), (n // 2, n // 2),
                                                           (n // 4, n // 4)}
    with torch.no_grad():
        ex = m.export()
        torch.testing.assert_close(ex(x), m(x), rtol=1e-4, atol=1e-5)
    rebuilt = build_model(**{**m.config, "exported": True})
    rebuilt.load_state_dict(ex.state_dict())
    with pytest.raises(ValueError, match=f"built for a {n}x{n} grid"):
        m(torch.randn(1, 2, 3, 2 * n, 2 * n))
    with pytest.raises(ValueError, match="needs grid"):
        build_model("clc_unet", T_in=2, hidden=2, depth=2)
    with pytest.raises(ValueError, match=f"limit {MAX_POSITION_PARAMS:,}.*smaller hidden"):
        build_model("clc_unet", T_in=8, hidden=16, depth=3, grid=(64, 64))


def test_checkpoint_round_trip(tmp_path):
    from surrogate.checkpoint import load_model, save
    torch.manual_seed(0)
    m = build_model("clc_unet", T_in=2, hidden=2, depth=2, grid=(H, H))
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, LocallyConnectedConv):
                mod.local_weights.normal_(0, 0.05)
    back = load_model(save(m, tmp_path / "clc.pt"))
    x = torch.randn(1, 2, 3, H, H)
    assert torch.equal(back(x), m(x)) and back.config["grid"] == [H, H]
