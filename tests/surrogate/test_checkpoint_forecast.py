"""Checkpoints (weights_only, tamper-evident) and the forecast API."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr

from surrogate import build_model
from surrogate.checkpoint import CheckpointError, read_checkpoint, save
from surrogate.forecast import ForecastError, Surrogate, load
from surrogate.normalization import Normalization
from surrogate.symmetry import FieldLayout

LAYOUT = FieldLayout()
T_IN, H = 3, 16


@pytest.fixture()
def ckpt(tmp_path):
    torch.manual_seed(0)
    model = build_model("relaxed_gconv_unet", T_in=T_IN, hidden=2, depth=2)
    norm = Normalization(LAYOUT, (0.5, 0.5, 2.0), (0.0, 0.0, 0.3))
    meta = {"data": {"grid": {"ny": H, "nx": H}, "dt": 0.5}}
    path = save(model, tmp_path / "m.pt", normalization=norm, metadata=meta)
    return path, model, norm


def _history(n_sim=2, n_time=5, seed=1):
    rng = np.random.default_rng(seed)
    shape = (n_sim, n_time, H, H)
    ds = xr.Dataset(
        {c: (("sim", "time", "y", "x"), rng.normal(size=shape).astype(np.float32),
             {"units": "1"}) for c in LAYOUT.channels},
        coords={"sim": np.arange(n_sim), "time": 0.5 * np.arange(n_time),
                "y": np.arange(H) + 0.5, "x": np.arange(H) + 0.5,
                "wall": ("sim", np.arange(n_sim))})
    return ds


def test_save_load_round_trip(ckpt):
    path, model, norm = ckpt
    ck = read_checkpoint(path)
    assert ck["normalization"] == norm
    assert ck["model_config"]["name"] == "relaxed_gconv_unet"
    s = load(path)
    x = torch.randn(2, T_IN, 3, H, H)
    with torch.no_grad():
        assert torch.equal(s(x), model.eval()(x))


def test_refuses_tampered_and_foreign_files(ckpt, tmp_path):
    path, _, _ = ckpt
    raw = torch.load(path, weights_only=True)
    key = next(iter(raw["state_dict"]))
    raw["state_dict"][key] = raw["state_dict"][key] + 1.0
    torch.save(raw, tmp_path / "tampered.pt")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        read_checkpoint(tmp_path / "tampered.pt")
    torch.save({"weights": torch.ones(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a relaxflow checkpoint"):
        read_checkpoint(tmp_path / "foreign.pt")

    class Evil:  # a pickled object must never be unpickled
        def __reduce__(self):
            return (print, ("executed!",))
    torch.save({"format": "relaxflow.checkpoint", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="pickled"):
        read_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "trunc.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "trunc.pt")


def test_forecast_matches_manual_loop(ckpt):
    path, model, norm = ckpt
    s = load(path)
    hist = _history()
    pred = s.forecast(hist, steps=4)
    assert dict(pred.sizes) == {"sim": 2, "time": 4, "y": H, "x": H}
    np.testing.assert_allclose(pred["time"].values, 2.0 + 0.5 * np.arange(1, 5))
    np.testing.assert_array_equal(pred["wall"].values, hist["wall"].values)
    assert pred.attrs["model"] == "relaxed_gconv_unet" and pred["u"].attrs["units"] == "1"
    # the manual autoregressive loop in physical units, with the un-exported model
    x = torch.from_numpy(np.stack([hist[c].values for c in LAYOUT.channels], axis=2))
    x = norm.normalize(x[:, -T_IN:])
    frames = []
    with torch.no_grad():
        for _ in range(4):
            y = model.eval()(x)
            frames.append(norm.denormalize(y))
            x = torch.cat([x[:, 1:], y[:, None]], dim=1)
    manual = torch.stack(frames, 1).numpy()
    got = np.stack([pred[c].values for c in LAYOUT.channels], axis=2)
    np.testing.assert_allclose(got, manual, rtol=1e-4, atol=1e-4)


def test_exported_cache_follows_the_weights(ckpt):
    """The exported (kernel-expanded) net is cached, but never listed in state_dict and
    rebuilt when the wrapped model's weights change in place."""
    path, _, _ = ckpt
    s = load(path)
    keys = set(s.state_dict())
    x = torch.randn(2, T_IN, 3, H, H)
    before = s.rollout(x, steps=2)
    assert s.exported() is s.exported()  # cached while the weights stay put
    assert set(s.state_dict()) == keys and all(k.startswith("model.") for k in keys)
    with torch.no_grad():  # perturb the relaxation weights (and all others) in place
        for p in s.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    after = s.rollout(x, steps=2)
    manual = s.rollout(x, steps=2, exported=False)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, manual, rtol=1e-4, atol=1e-4)


def test_forecast_errors_explain_themselves(ckpt):
    s = load(ckpt[0])
    with pytest.raises(ForecastError, match="at least T_in=3"):
        s.forecast(_history(n_time=2), steps=1)
    with pytest.raises(ForecastError, match="lacks variable"):
        s.forecast(_history().drop_vars("density"), steps=1)
    with pytest.raises(ForecastError, match="trained on a 16x16 grid"):
        s.forecast(torch.zeros(1, 3, 3, 32, 32), steps=1)
    with pytest.raises(ForecastError, match="apart in time"):
        s.forecast(_history().assign_coords(time=np.arange(5.0)), steps=1)
    with pytest.raises(ForecastError, match="channels"):
        s.forecast(torch.zeros(1, 3, 2, H, H), steps=1)


def test_forecast_from_fresh_process(ckpt, tmp_path):
    path = ckpt[0]
    _history(n_sim=1).to_netcdf(tmp_path / "h.nc")
    code = ("import surrogate, xarray as xr; m = surrogate.load(r'%s');"
            "p = m.forecast(xr.open_dataset(r'%s'), steps=3); print(p.sizes['time'])"
            % (path, tmp_path / "h.nc"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("3")
