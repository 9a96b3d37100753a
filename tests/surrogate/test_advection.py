"""The semi-Lagrangian scalar transport (``advect``): exact shifts, the identity at
init (persistence kept), exact C4 / D4 equivariance with a learned step, gradients to
the step, checkpoints and the option's checks."""

import pytest
import torch

from surrogate import FieldLayout, build_model
from surrogate.checkpoint import model_from_checkpoint, read_checkpoint, save
from surrogate.layers.advection import ScalarAdvection, carry
from surrogate.symmetry import transform_fields

LAYOUT = FieldLayout()
TINY = dict(T_in=2, hidden=2, depth=2, advect=True)


def _blob(n=16, cx=6.0, cy=5.0):
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64),
                          torch.arange(n, dtype=torch.float64), indexing="ij")
    return torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 4)


def test_carry_moves_a_blob_downstream_by_whole_and_half_cells():
    s = _blob()[None, None]
    # u = +2 cells along x, v = -1 along y: the blob moves to (8, 4)
    disp = torch.zeros(1, 2, 16, 16, dtype=torch.float64)
    disp[:, 0], disp[:, 1] = 2.0, -1.0
    torch.testing.assert_close(carry(s, disp)[0, 0, :15, 2:], _blob(cx=8.0, cy=4.0)[:15, 2:],
                               rtol=0, atol=1e-12)   # inside: sampled from within the box
    # half a cell: the mean of the two neighbours (bilinear)
    disp[:, 0], disp[:, 1] = 0.5, 0.0
    want = 0.5 * (s[0, 0] + torch.roll(s[0, 0], 1, dims=1))
    torch.testing.assert_close(carry(s, disp)[0, 0, :, 1:], want[:, 1:], rtol=0, atol=1e-12)
    # zero displacement is the identity, bit for bit; outside the box: the border value
    assert torch.equal(carry(s, torch.zeros_like(disp)), s)
    disp[:, 0] = 100.0
    torch.testing.assert_close(carry(s, disp)[0, 0], s[0, 0, :, :1].expand(16, 16))


def _frames(model, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, model.T_in, 3, n, n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("name", ["unet", "gconv_unet", "steer_unet", "combo_unet"])
def test_advecting_model_starts_as_persistence_and_learns_the_step(name):
    torch.manual_seed(0)
    model = build_model(name, **TINY).double()
    model.init_persistence()
    x = _frames(model)
    assert torch.equal(model(x), x[:, -1])
    model(x).sub(x[:, -1].roll(1, dims=-1)).square().sum().backward()
    steps = [m.coef for m in model.modules() if isinstance(m, ScalarAdvection)]
    assert steps and all(c.grad is not None and c.grad.abs() > 0 for c in steps)


@pytest.mark.parametrize("name,group", [("gconv_unet", "D4"), ("steer_unet", "C4"),
                                        ("relaxed_gconv_unet", "C4")])
def test_advecting_model_is_exactly_equivariant_with_a_learned_step(name, group):
    torch.manual_seed(0)
    model = build_model(name, group=group, **TINY).double()
    with torch.no_grad():
        model.advection.coef.fill_(1.7)   # several cells: interpolation, border, all in play
    x = 3 * _frames(model)
    assert not torch.allclose(model(x)[:, 2], build_model(name, group=group, **{
        **TINY, "advect": False}).double()(x)[:, 2])
    flips = (False, True) if group == "D4" else (False,)
    for k in (1, 2, 3):
        for flip in flips:
            gx = torch.stack([transform_fields(f, LAYOUT, k=k, flip=flip) for f in x])
            want = transform_fields(model(x), LAYOUT, k=k, flip=flip)
            torch.testing.assert_close(model(gx), want, rtol=1e-9, atol=1e-10)


def test_the_velocity_is_not_carried_and_the_step_uses_the_mean_velocity():
    adv = ScalarAdvection((0, 1), [2]).double()
    with torch.no_grad():
        adv.coef.fill_(1.0)
    last = torch.zeros(1, 3, 16, 16, dtype=torch.float64)
    last[:, 0], last[:, 2] = 1.0, _blob()
    pred = last.clone()
    pred[:, 0] = 3.0                       # mean u = 2 cells per step
    out = adv(last, pred)
    assert torch.equal(out[:, :2], last[:, :2])
    torch.testing.assert_close(out[0, 2, :, 2:], _blob(cx=8.0)[:, 2:], rtol=0, atol=1e-12)


def test_advect_round_trips_a_checkpoint_and_older_configs_build_without_it(tmp_path):
    torch.manual_seed(0)
    model = build_model("gconv_unet", **TINY)
    with torch.no_grad():
        model.advection.coef.fill_(0.8)
    assert model.config["advect"] is True
    save(model, tmp_path / "m.pt")
    back = model_from_checkpoint(read_checkpoint(tmp_path / "m.pt"))
    assert float(back.advection.coef) == pytest.approx(0.8)
    x = _frames(model).float()
    torch.testing.assert_close(back(x), model(x))
    plain = build_model("gconv_unet", T_in=2, hidden=2, depth=2)
    assert "advect" not in plain.config and plain.advection is None
    exported = model.export()
    torch.testing.assert_close(exported(x), model(x), rtol=1e-5, atol=1e-5)


def test_advect_needs_a_residual_model_with_a_vector_and_a_scalar():
    with pytest.raises(ValueError, match="advect needs residual=True"):
        build_model("unet", advect=True, residual=False, T_in=2, hidden=2, depth=2)
    with pytest.raises(ValueError, match="a vector and a scalar"):
        build_model("unet", advect=True, T_in=2, hidden=2, depth=2,
                    layout={"channels": ["u", "v"], "vectors": [["u", "v"]]})
    with pytest.raises(ValueError, match="option advect must be true or false"):
        build_model("unet", advect="yes")
