"""Breaking symmetry by inputs: frame, cause and coords fields next to the state."""

import importlib.util
import json

import numpy as np
import pytest
import torch
import xarray as xr

from surrogate import build_model, count_parameters, export
from surrogate.breaking import (BREAKING_INPUTS, CAUSE_VARS, aux_layout,
                                canonical_breaking_inputs, data_layout,
                                fit_aux_normalization)
from surrogate.checkpoint import read_checkpoint, save
from surrogate.forecast import ForecastError, load
from surrogate.groups import get_group
from surrogate.normalization import Normalization
from surrogate.symmetry import FieldLayout, transform_fields

TINY = dict(T_in=2, hidden=2, depth=2)
N = 8


def make(name, breaking, **kw):
    if name.startswith(("steer", "relaxed_steer")) and \
            importlib.util.find_spec("surrogate.layers.steerable") is None:
        pytest.skip("steerable layers not available")
    torch.manual_seed(0)
    return build_model(name, **{**TINY, "breaking_inputs": breaking, **kw}).double()


def inputs(model, batch=2, n=N, seed=0):
    """A random state and random cause fields (when the model uses them), float64."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, model.T_in, model.layout.num_channels, n, n, generator=gen,
                    dtype=torch.float64)
    c = model.breaking.data_layout.num_channels
    aux = torch.randn(batch, c, n, n, generator=gen, dtype=torch.float64) if c else None
    return x, aux


def errors(model, x, aux, rotate_aux):
    """Relative equivariance error per non-identity grid-exact element of the model's
    group (D4 for the plain unet). ``rotate_aux``: transform the full aux fields (frame,
    cause, coords as the model would make them) with the state; else only the state."""
    group = model.group if model.group.order > 1 else get_group("D4")
    n = x.shape[-1]
    full = model.breaking(aux, x.shape[0], n, n, x.dtype, x.device)
    out = []
    with torch.no_grad():
        y = model(x, aux)
        for g in group.grid_elements:
            if g == (0, 0):
                continue
            k, f = group.quarter_turns(g), bool(g[1])
            gx = transform_fields(x, model.layout, k, f)
            if rotate_aux:
                gy_pred = model(gx, transform_fields(full, model.aux_layout, k, f))
            else:
                gy_pred = model(gx, aux)
            gy = transform_fields(y, model.layout, k, f)
            out.append(((gy_pred - gy).norm() / gy.norm()).item())
    return out


EQUIVARIANT = [("gconv_unet", "C4"), ("gconv_unet", "D4"), ("steer_unet", "C4"),
               ("steer_unet", "D4"), ("relaxed_gconv_unet", "D4")]


@pytest.mark.parametrize("breaking", [["frame"], ["cause"], ["cause", "frame"]])
@pytest.mark.parametrize("name,group", EQUIVARIANT)
def test_equivariant_in_state_and_aux_jointly_not_in_state_alone(name, group, breaking):
    model = make(name, breaking, group=group)
    x, aux = inputs(model)
    assert max(errors(model, x, aux, rotate_aux=True)) < 1e-5
    assert min(errors(model, x, aux, rotate_aux=False)) > 1e-3


@pytest.mark.parametrize("name", ["unet", "gconv_unet", "relaxed_gconv_unet", "steer_unet",
                                  "relaxed_steer_unet"])
def test_coords_break_every_model(name):
    model = make(name, ["coords"])
    x, aux = inputs(model)
    assert aux is None
    assert min(errors(model, x, None, rotate_aux=False)) > 1e-3
    if model.group.order > 1:  # only because the coords do not move with the grid
        assert max(errors(model, x, None, rotate_aux=True)) < 1e-5


def test_names_layouts_and_built_fields():
    assert canonical_breaking_inputs("coords, frame,cause") == BREAKING_INPUTS
    assert canonical_breaking_inputs(["cause", "cause"]) == ("cause",)
    assert canonical_breaking_inputs(None) == canonical_breaking_inputs("") == ()
    with pytest.raises(ValueError, match="unknown breaking input"):
        canonical_breaking_inputs(["gravity"])
    lay = aux_layout(["coords", "cause", "frame"])
    assert lay.channels == ("frame_ex_x", "frame_ex_y", "frame_ey_x", "frame_ey_y",
                            *CAUSE_VARS, "coord_x", "coord_y")
    assert lay.vectors == (("frame_ex_x", "frame_ex_y"), ("frame_ey_x", "frame_ey_y"),
                           ("buoyancy_x", "buoyancy_y"))
    assert data_layout(["frame", "coords"]).num_channels == 0
    assert data_layout(["frame", "cause"]).channels == CAUSE_VARS

    model = make("unet", ["frame", "coords"])
    a = model.breaking(None, 3, 4, 6, torch.float64, torch.device("cpu"))
    assert a.shape == (3, 6, 4, 6)
    assert torch.equal(a[:, :4].mean(dim=(0, 2, 3)), torch.tensor([1.0, 0, 0, 1],
                                                                    dtype=torch.float64))
    xs = (np.arange(6) + 0.5) / 3 - 1  # cell centres in (-1, 1), x along the last axis
    ys = (np.arange(4) + 0.5) / 2 - 1
    np.testing.assert_allclose(a[0, 4].numpy(), np.broadcast_to(xs, (4, 6)))
    np.testing.assert_allclose(a[0, 5].numpy(), np.broadcast_to(ys[:, None], (4, 6)))


@pytest.mark.parametrize("name", ["unet", "gconv_unet"])
def test_channel_bookkeeping_and_aux_forms(name):
    plain = make(name, [])
    model = make(name, ["frame", "cause", "coords"])
    g = model.group.order
    n_state = model.lift.out_fields
    n_aux = model.aux_lift.out_fields
    assert n_aux == (len(aux_layout(BREAKING_INPUTS).channels) if g == 1 else 3 + 5)
    assert model.stem.in_fields == model.T_in * n_state + n_aux
    assert plain.stem.in_fields == plain.T_in * n_state and plain.aux_lift is None
    # no extra state beyond the wider stem
    assert set(model.state_dict()) == set(plain.state_dict())
    x, aux = inputs(model)
    full = model.breaking(aux, 2, N, N, x.dtype, x.device)
    assert full.shape == (2, 4 + 5 + 2, N, N)
    with torch.no_grad():
        y = model(x, aux)
        assert y.shape == x[:, -1].shape
        assert torch.equal(model(x, full), y)  # every channel given == data channels only
        torch.testing.assert_close(model(x[:1], aux[:1]), y[:1])
        torch.testing.assert_close(model(x, aux[:1].expand(2, -1, -1, -1)),
                                   model(x, aux[:1]))  # a batch of 1 is broadcast
    with pytest.raises(ValueError, match="buoyancy_x"):
        model(x)
    with pytest.raises(ValueError, match="shape"):
        model(x, aux[:, :3])
    with pytest.raises(ValueError, match="no breaking inputs"):
        plain(x, aux)
    frame = make(name, ["frame"])
    assert frame(x).shape == y.shape  # frame needs no data


@pytest.mark.parametrize("name", ["gconv_unet", "relaxed_gconv_unet"])
def test_config_round_trip_and_export(name):
    model = make(name, "coords,cause", num_banks=2)
    assert model.config["breaking_inputs"] == ["cause", "coords"]
    json.dumps(model.config)
    again = build_model(**model.config).double()
    assert count_parameters(again) == count_parameters(model)
    again.load_state_dict(model.state_dict())
    x, aux = inputs(model)
    with torch.no_grad():
        assert torch.equal(again(x, aux), model(x, aux))
        torch.testing.assert_close(export(model)(x, aux), model(x, aux))
    assert build_model(name, **TINY).config["breaking_inputs"] == []


def test_fit_aux_normalization():
    lay = data_layout(["cause"])
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 5, 4, 4))
    a[:, 2:] = rng.random(size=(3, 3, 4, 4))
    norm = fit_aux_normalization(a, lay)
    s = np.sqrt(np.mean(a[:, 0] ** 2 + a[:, 1] ** 2) / 2)
    assert norm.scale == pytest.approx((s, s, 1, 1, 1)) and norm.shift == (0,) * 5
    state = Normalization(FieldLayout(), (2.0, 2.0, 1.0), (0.0, 0.0, 0.5), aux=norm)
    assert Normalization.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    assert "aux" not in Normalization.identity(FieldLayout()).to_dict()


def test_cause_names_match_simulate():
    try:
        from simulate.dataset import CAUSE_VARS as SIM_CAUSE
    except ImportError:
        pytest.skip("simulate.dataset is not available")
    assert set(CAUSE_VARS) == set(SIM_CAUSE)


# -- checkpoint and forecast ----------------------------------------------------------
T_IN, H = 2, 8


def _history(n_sim=2, n_time=4, seed=1, cause=True):
    rng = np.random.default_rng(seed)
    dims = ("sim", "time", "y", "x")
    data = {c: (dims, rng.normal(size=(n_sim, n_time, H, H)).astype(np.float32))
            for c in ("u", "v", "density")}
    if cause:
        for c in CAUSE_VARS:
            data[c] = (("sim", "y", "x"), rng.normal(size=(n_sim, H, H)).astype(np.float32))
    return xr.Dataset(data, coords={"sim": np.arange(n_sim), "time": 0.5 * np.arange(n_time),
                                    "y": np.arange(H) + 0.5, "x": np.arange(H) + 0.5})


@pytest.fixture()
def cause_ckpt(tmp_path):
    torch.manual_seed(0)
    model = build_model("gconv_unet", T_in=T_IN, hidden=2, depth=2,
                        breaking_inputs=["frame", "cause"])
    aux_norm = Normalization(data_layout(["cause"]), (0.2, 0.2, 1, 1, 1), (0,) * 5)
    norm = Normalization(FieldLayout(), (0.5, 0.5, 2.0), (0.0, 0.0, 0.3), aux=aux_norm)
    path = save(model, tmp_path / "m.pt", normalization=norm,
                metadata={"data": {"grid": {"ny": H, "nx": H}, "dt": 0.5}})
    return path, model, norm


def test_checkpoint_round_trip(cause_ckpt):
    path, model, norm = cause_ckpt
    ck = read_checkpoint(path)
    assert ck["model_config"]["breaking_inputs"] == ["frame", "cause"]
    assert ck["normalization"] == norm and ck["normalization"].aux == norm.aux
    s = load(path)
    assert s.breaking_inputs == ("frame", "cause") and s.aux_channels == CAUSE_VARS
    x = torch.randn(2, T_IN, 3, H, H)
    aux = torch.randn(2, 5, H, H)
    with torch.no_grad():
        assert torch.equal(s(x, aux), model.eval()(x, aux))


def test_forecast_takes_cause_from_dataset_or_explicit_aux(cause_ckpt):
    path, model, norm = cause_ckpt
    s = load(path)
    hist = _history()
    pred = s.forecast(hist, steps=3)
    aux = np.stack([hist[c].values for c in CAUSE_VARS], axis=1)
    x = np.stack([hist[c].values for c in ("u", "v", "density")], axis=2)
    ref = s.rollout(torch.from_numpy(x), 3, aux=torch.from_numpy(aux))
    for i, c in enumerate(("u", "v", "density")):
        np.testing.assert_allclose(pred[c].values, ref[:, :, i].numpy(), rtol=1e-6, atol=1e-6)
    # by hand: normalised state and cause, the raw network, denormalised
    with torch.no_grad():
        xn = norm.normalize(torch.from_numpy(x[:, -T_IN:]))
        an = norm.aux.normalize(torch.from_numpy(aux))
        y0 = norm.denormalize(model.eval()(xn, an))
    torch.testing.assert_close(ref[:, 0], y0, rtol=1e-5, atol=1e-5)

    bare = _history(cause=False)
    as_dict = {c: hist[c].values for c in CAUSE_VARS}
    for given in (as_dict, hist[list(CAUSE_VARS)], aux):
        out = s.forecast(bare, steps=3, aux=given)
        np.testing.assert_allclose(out["u"].values, pred["u"].values, rtol=1e-6, atol=1e-6)
    with pytest.raises(ForecastError, match="lacks .*buoyancy_x.*aux="):
        s.forecast(bare, steps=1)
    with pytest.raises(ForecastError, match="cause fields"):
        s.rollout(torch.from_numpy(x), 1)
    with pytest.raises(ForecastError, match="missing"):
        s.forecast(bare, steps=1, aux={"buoyancy_x": as_dict["buoyancy_x"]})
    with pytest.raises(ForecastError, match="shape"):
        s.rollout(torch.from_numpy(x), 1, aux=aux[:, :2])
