import json

import xarray as xr

import pytest
import torch

from surrogate.checkpoint import model_from_checkpoint, read_checkpoint
from train import ConfigError, TrainingError, fit
from train import loop as train_loop
from train.objective import Rollout, multistep_loss

from train_fixtures import recompute_valid_rmse, tiny_config


def _metrics(out):
    return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("model", ["unet", "relaxed_gconv_unet", "combo_unet"])
def test_training_lowers_valid_loss_and_checkpoint_reproduces_it(tiny_nc, tmp_path, model):
    out = tmp_path / model
    best = fit(tiny_config(tiny_nc, out, model=model, epochs=3, targets="state",
                           persistence_init=False, schedule="step"))
    assert best == out / "best.pt"
    m = _metrics(out)
    assert [r["epoch"] for r in m] == [0, 1, 2, 3]
    assert m[-1]["valid_loss"] < 0.5 * m[0]["valid_loss"]
    assert m[-1]["valid_rmse"] < m[0]["valid_rmse"]
    assert m[-1]["train_loss"] < m[1]["train_loss"]
    for r in m[1:]:
        assert {"train_loss", "penalty", "valid_loss", "valid_rmse", "lr", "epoch_time_s",
                "valid_rmse_per_channel"} <= set(r)
    assert m[2]["lr"] == pytest.approx(m[1]["lr"] * 0.95)

    # the checkpoint alone (weights, normalisation, split spec) reproduces the valid RMSE
    ckpt = read_checkpoint(best)
    meta = ckpt["metadata"]
    assert recompute_valid_rmse(ckpt) == pytest.approx(meta["valid_rmse"], rel=1e-5)
    best_epoch = min(m[1:], key=lambda r: r["valid_rmse"])["epoch"]
    assert meta["epoch"] == meta["best_epoch"] == best_epoch

    # last.pt round-trips to identical predictions of identical weights
    last = read_checkpoint(out / "last.pt")
    a, b = model_from_checkpoint(last), model_from_checkpoint(read_checkpoint(out / "last.pt"))
    x = torch.randn(2, 2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    assert last["training_state"]["epoch"] == 3


def test_checkpoint_metadata_is_self_sufficient(tiny_nc, tmp_path):
    fit(tiny_config(tiny_nc, tmp_path, epochs=1))
    ckpt = read_checkpoint(tmp_path / "best.pt")
    meta = ckpt["metadata"]
    for key in ("model", "model_config_requested", "T_in", "K", "valid_steps", "layout",
                "channels", "splits", "data", "train_config", "epoch", "valid_rmse",
                "best_valid_rmse", "best_epoch", "world_size"):
        assert key in meta, key
    assert meta["T_in"] == 2 and meta["model"] == "unet"
    assert meta["layout"] == {"channels": ["u", "v", "density"], "vectors": [["u", "v"]]}
    assert ckpt["model_config"]["T_in"] == 2 and ckpt["model_config"]["name"] == "unet"
    for split in ("train", "valid", "test_future", "test_domain"):
        assert {"sims", "start", "stop", "horizon"} <= set(meta["splits"][split])
    assert meta["splits"]["test_domain"]["sims"] == [4]          # the `heldout` coordinate
    assert meta["data"]["scenario"] == "tiny-wind" and meta["data"]["dt"] == 1.0
    assert meta["data"]["grid"]["ny"] == 16
    norm = ckpt["normalization"]
    assert norm.scale[0] == norm.scale[1] and norm.shift[:2] == (0.0, 0.0)
    assert "training_state" not in ckpt                        # best.pt is lean
    assert "optimizer" in read_checkpoint(tmp_path / "last.pt")["training_state"]


def test_resume_equals_uninterrupted(tiny_nc, tmp_path):
    """Step schedule: a run may be resumed with more epochs than it first had."""
    kw = dict(schedule="step")
    straight = read_checkpoint(fit(tiny_config(tiny_nc, tmp_path / "a", epochs=4, **kw)).parent
                               / "last.pt")
    fit(tiny_config(tiny_nc, tmp_path / "b", epochs=2, **kw))
    fit(tiny_config(tiny_nc, tmp_path / "b", epochs=4, resume=True, **kw))
    resumed = read_checkpoint(tmp_path / "b" / "last.pt")
    assert straight["state_dict"].keys() == resumed["state_dict"].keys()
    for k, v in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][k], v, rtol=1e-6, atol=1e-7)
    assert [r["epoch"] for r in _metrics(tmp_path / "b")] == [0, 1, 2, 3, 4]
    a, b = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert [r["valid_rmse"] for r in a] == pytest.approx([r["valid_rmse"] for r in b], rel=1e-5)


def test_killed_recipe_run_resumes_bit_identical(tiny_nc, tmp_path, monkeypatch):
    """The default recipe (delta targets, cosine schedule) with noise, weight EMA and a
    K curriculum: a run killed after epoch 2 and resumed ends with the weights, EMA and
    metrics of the uninterrupted run."""
    kw = dict(epochs=4, noise=0.3, ema=0.9, curriculum=True)
    fit(tiny_config(tiny_nc, tmp_path / "a", **kw))
    real_save, saves = train_loop.save, {"n": 0}

    def dying_save(model, path, **k):
        real_save(model, path, **k)
        if path.name == "last.pt":
            saves["n"] += 1
            if saves["n"] == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(train_loop, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(tiny_nc, tmp_path / "b", **kw))
    monkeypatch.setattr(train_loop, "save", real_save)
    assert read_checkpoint(tmp_path / "b" / "last.pt")["training_state"]["epoch"] == 2
    fit(tiny_config(tiny_nc, tmp_path / "b", resume=True, **kw))
    a, b = (read_checkpoint(tmp_path / d / "last.pt") for d in "ab")
    for k, v in a["state_dict"].items():  # the EMA weights
        torch.testing.assert_close(b["state_dict"][k], v, rtol=1e-6, atol=1e-7)
    for k, v in a["training_state"]["raw_state_dict"].items():
        torch.testing.assert_close(b["training_state"]["raw_state_dict"][k], v,
                                   rtol=1e-6, atol=1e-7)
    assert [r["valid_rmse"] for r in _metrics(tmp_path / "a")] == pytest.approx(
        [r["valid_rmse"] for r in _metrics(tmp_path / "b")], rel=1e-5)


def test_persistence_init_scores_persistence_and_training_beats_it(tiny_nc, tmp_path):
    """The untrained model of the default recipe is exactly persistence (its epoch-0
    valid RMSE is that of repeating the last frame); a few epochs beat it."""
    best = fit(tiny_config(tiny_nc, tmp_path, epochs=6, lr=1e-2))
    m = _metrics(tmp_path)
    ckpt = read_checkpoint(best)
    norm, spec = ckpt["normalization"], ckpt["metadata"]["splits"]
    from train.data import open_data
    data = open_data([str(tiny_nc)], ("u", "v", "density"), min_time=4)
    v = spec["valid"]
    se, n = 0.0, 0
    K = ckpt["metadata"]["valid_steps"]
    for s in v["sims"]:
        for t in range(v["start"], v["stop"], v.get("stride", 1)):
            f = torch.from_numpy(data.frames(s, t, t + 2 + K)).double()
            se += ((f[2:] - f[1]) ** 2).sum().item()
            n += f[2:].numel()
    assert m[0]["valid_rmse"] == pytest.approx((se / n) ** 0.5, rel=1e-5)
    assert min(r["valid_rmse"] for r in m[1:]) < 0.9 * m[0]["valid_rmse"]
    assert norm.delta_scale is not None and norm.delta_scale[0] == norm.delta_scale[1]
    model = model_from_checkpoint(ckpt)
    torch.testing.assert_close(model.delta_scale,
                               torch.tensor(norm.delta_gain, dtype=torch.float32))
    assert ckpt["metadata"]["train_config"]["targets"] == "delta"


def test_cosine_schedule_warms_up_and_decays(tiny_nc, tmp_path):
    fit(tiny_config(tiny_nc, tmp_path, epochs=4, warmup=0.3, lr=1e-2))
    lrs = [r["lr"] for r in _metrics(tmp_path)[1:]]  # lr at the start of each epoch
    assert lrs[0] < 0.5e-2 and max(lrs) > lrs[0] and lrs[-1] < max(lrs)


def test_state_targets_need_no_residual_but_delta_does(tiny_nc, tmp_path):
    with pytest.raises(ConfigError, match="residual"):
        fit(tiny_config(tiny_nc, tmp_path, model_config={"hidden": 4, "depth": 2,
                                                         "norm_groups": 1,
                                                         "residual": False}))
    fit(tiny_config(tiny_nc, tmp_path, epochs=1, targets="state", persistence_init=False,
                    model_config={"hidden": 4, "depth": 2, "norm_groups": 1,
                                  "residual": False}))


def test_run_directory_guards(tiny_nc, tmp_path):
    with pytest.raises(ConfigError, match="cannot resume"):
        fit(tiny_config(tiny_nc, tmp_path, resume=True))
    fit(tiny_config(tiny_nc, tmp_path, epochs=1))
    with pytest.raises(ConfigError, match="already holds a training run"):
        fit(tiny_config(tiny_nc, tmp_path, epochs=1))
    with pytest.raises(ConfigError, match="cannot resume"):
        fit(tiny_config(tiny_nc, tmp_path, epochs=2, resume=True, model="gconv_unet"))
    with pytest.raises(ConfigError, match="unknown model"):
        fit(tiny_config(tiny_nc, tmp_path, model="nope", overwrite=True))


def test_nan_loss_stops_with_epoch_and_step_and_keeps_last_good(tiny_nc, tmp_path,
                                                                 monkeypatch):
    real_build = train_loop.build_model
    calls = {"n": 0}

    def build(name, **cfg):
        model = real_build(name, **cfg)
        real_penalty = model.equivariance_penalty

        def penalty():
            calls["n"] += 1
            return real_penalty() + (float("nan") if calls["n"] == 10 else 0.0)
        model.equivariance_penalty = penalty
        return model

    monkeypatch.setattr(train_loop, "build_model", build)
    # 60 train windows / batch 8 = 8 steps per epoch: call 10 is epoch 2, step 2
    with pytest.raises(TrainingError, match=r"non-finite loss .* epoch 2, step 2.*last "
                                            r"good checkpoint .*last.pt \(epoch 1\) is kept"):
        fit(tiny_config(tiny_nc, tmp_path, epochs=3))
    last = read_checkpoint(tmp_path / "last.pt")
    assert last["metadata"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_pushforward_detaches_the_fed_back_prediction():
    torch.manual_seed(0)
    step = torch.nn.Sequential(torch.nn.Flatten(1, 2), torch.nn.Conv2d(6, 3, 3, padding=1))
    x, y = torch.randn(2, 2, 3, 8, 8), torch.randn(2, 3, 3, 8, 8)
    grads = []
    for pf in (False, True):
        step.zero_grad()
        loss = multistep_loss(Rollout(step)(x, 3, pushforward=pf), y)
        loss.backward()
        grads.append((loss.item(), step[1].weight.grad.clone()))
    assert grads[0][0] == pytest.approx(grads[1][0])          # same forward
    assert not torch.allclose(grads[0][1], grads[1][1])       # different backward


def test_grid_the_model_cannot_take_is_refused_before_training(tmp_path):
    from train import DataError
    from train_fixtures import make_dataset
    path = make_dataset(tmp_path / "g18.nc", n=18)
    cfg = tiny_config(path, tmp_path / "run",
                      model_config={"hidden": 4, "depth": 3, "norm_groups": 1})
    with pytest.raises(DataError, match="divisible by 2\\*\\*\\(depth-1\\) = 4"):
        fit(cfg)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_bf16_autocast_path_and_lazy_data_run_on_cpu(tiny_nc, tmp_path):
    fit(tiny_config(tiny_nc, tmp_path, epochs=1, amp="bf16", in_memory="no",
                    pushforward=True, max_steps_per_epoch=3))
    m = _metrics(tmp_path)
    assert m[-1]["epoch"] == 1 and m[-1]["valid_rmse"] == m[-1]["valid_rmse"]  # finite


def test_loss_weights_scale_the_loss_per_field(tiny_nc, tmp_path):
    """The epoch-0 valid loss (the persistence-initialised model) is sum_c w_c MSE_c:
    doubling every weight doubles it exactly; weighing density alone up raises it by
    less than that factor. Bad weights are refused naming the problem."""
    def loss0(sub, **kw):
        fit(tiny_config(tiny_nc, tmp_path / sub, epochs=1, **kw))
        return _metrics(tmp_path / sub)[0]["valid_loss"]

    plain = loss0("plain")
    assert loss0("all2", loss_weights={"u": 2, "v": 2, "density": 2}) == \
        pytest.approx(2 * plain, rel=1e-6)
    dens = loss0("dens3", loss_weights={"density": 3.0})
    assert plain * 1.001 < dens < 3 * plain * 0.999
    assert read_checkpoint(tmp_path / "dens3" / "best.pt")["metadata"]["train_config"][
        "loss_weights"] == {"density": 3.0}
    with pytest.raises(ConfigError, match=r"unknown channel\(s\) \['rho'\]"):
        fit(tiny_config(tiny_nc, tmp_path / "bad1", loss_weights={"rho": 2}))
    with pytest.raises(ConfigError, match=r"vector field \(u, v\) needs one weight"):
        fit(tiny_config(tiny_nc, tmp_path / "bad2", loss_weights={"u": 2}))
    for bad in (-1, 0, float("inf"), "2", True):
        with pytest.raises(ConfigError, match="loss_weights"):
            tiny_config(tiny_nc, tmp_path / "bad3", loss_weights={"density": bad})


def test_nonnegative_bounds_the_never_negative_scalar_at_zero(tiny_nc, tmp_path):
    """``nonnegative`` (the default): density, never negative in the data, gets the
    lower bound 0 in the checkpoint's normalisation, u and v none; every forecast frame
    has density >= 0. A scalar negative somewhere in the train split gets no bound."""
    import math
    from surrogate.forecast import load
    best = fit(tiny_config(tiny_nc, tmp_path / "nn", epochs=1))
    assert read_checkpoint(best)["normalization"].lower_bound == (-math.inf, -math.inf, 0.0)
    ds = xr.open_dataset(tiny_nc)
    pred = load(best).forecast(ds.isel(sim=[4], time=slice(0, 2)), steps=6)
    assert float(pred["density"].min()) >= 0.0
    shifted = tmp_path / "shifted.nc"
    ds.assign(density=ds["density"] - 0.5).to_netcdf(shifted)
    ds.close()
    best = fit(tiny_config(shifted, tmp_path / "neg", epochs=1))
    assert read_checkpoint(best)["normalization"].lower_bound == (-math.inf,) * 3
    best = fit(tiny_config(tiny_nc, tmp_path / "off", epochs=1, nonnegative=False))
    assert read_checkpoint(best)["normalization"].lower_bound is None
