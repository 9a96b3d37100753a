"""Model equivariance error, data equivariance error and the relaxation summary."""

import pytest
import torch

import surrogate
from evaluate.equivariance import (data_equivariance_error, equivariance_error,
                                   model_equivariance_error, relaxation_summary, subgroups)
from surrogate.groups import get_group
from surrogate.symmetry import FieldLayout

TINY = dict(T_in=2, hidden=2, depth=2, norm_groups=1)


def history(seed=0, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 2, 3, n, n, generator=g, dtype=torch.float64)


def test_equivariance_error_of_simple_maps():
    layout = FieldLayout()
    x = history()
    # the last frame times two commutes with every rotation and mirror
    e = equivariance_error(lambda h: 2 * h[:, -1], x, layout, "D4")
    assert e.mean < 1e-12 and len(e.per_element) == 7  # identity left out
    # adding a constant u-velocity (a fixed direction) is not equivariant
    shift = torch.zeros(3, 1, 1, dtype=torch.float64)
    shift[0] = 1.0
    e = equivariance_error(lambda h: h[:, -1] + shift, x, layout, "C4")
    assert e.mean > 0.1 and set(e.per_element) == {"r", "r2", "r3"}


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_gconv_unet_is_equivariant(group):
    torch.manual_seed(0)
    model = surrogate.build_model("gconv_unet", group=group, **TINY)
    e = model_equivariance_error(model, history())
    assert e.group == group
    assert e.mean < 1e-5, e


def test_plain_unet_is_not_equivariant():
    torch.manual_seed(0)
    model = surrogate.build_model("unet", **TINY)
    e = model_equivariance_error(model, history())
    assert e.group == "C4"
    assert e.mean > 1e-2


def test_relaxed_gconv_summary_finds_the_learned_subgroup():
    torch.manual_seed(0)
    model = surrogate.build_model("relaxed_gconv_unet", **TINY)
    x = history()
    assert model_equivariance_error(model, x).mean < 1e-5
    layers = relaxation_summary(model)
    assert layers and all(l.kind == "group" and l.symmetry == "C4" for l in layers)
    assert all(l.relative_deviation == 0 for l in layers)
    # make one layer's weights depend on g only through g modulo a half turn: the layer
    # is then C2- but not C4-equivariant, and the summary must say so
    conv = next(m for m in model.modules() if hasattr(m, "relaxed_weights"))
    with torch.no_grad():
        conv.relaxed_weights.copy_(torch.tensor([[1.0, 0.2, 1.0, 0.2], [0.3, 0.9, 0.3, 0.9]]))
    assert model_equivariance_error(model, x).mean > 1e-3
    layer = next(l for l in relaxation_summary(model) if l.relative_deviation > 0)
    assert layer.symmetry == "C2"
    assert layer.violations["C2"] < 1e-12 < layer.violations["C4"]
    assert layer.profile["e"] == pytest.approx(layer.profile["r2"])
    assert layer.profile["e"] != pytest.approx(layer.profile["r"])


def test_relaxed_steerable_summary_points_at_kernel_positions():
    torch.manual_seed(0)
    model = surrogate.build_model("relaxed_steer_unet", **TINY)
    layers = relaxation_summary(model)
    assert layers and all(l.kind == "steerable" and l.relative_deviation < 1e-12
                          for l in layers)
    conv = next(m for n, m in model.named_modules() if n == layers[0].name)
    with torch.no_grad():
        conv.delta[..., 0, 2] += 10.0  # break it at one corner of the kernel
    layer = relaxation_summary(model)[0]
    assert layer.relative_deviation > 0.1
    assert layer.profile.shape == (3, 3)
    assert divmod(int(layer.profile.argmax()), 3) == (0, 2)


def test_subgroups_of_d4():
    subs = subgroups(get_group("D4"))
    assert sorted(len(s) for s in subs) == [1, 2, 2, 2, 2, 2, 4, 4, 4, 8]


def test_data_equivariance_error_is_graceful(tiny_data):
    _, ds = tiny_data
    value, note = data_equivariance_error(ds)
    assert note  # either a value with its scenario, or the reason there is none
    assert value is None or value >= 0

