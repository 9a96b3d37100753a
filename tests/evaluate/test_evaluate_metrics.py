"""Metric functions against values computed by hand on small arrays."""

import math

import numpy as np
import pytest
import torch

from evaluate import metrics as M


def frames(*steps):
    """(B=1, S, C=1, H=1, W=n) from per-step lists."""
    return np.array(steps, dtype=float)[None, :, None, None, :]


def test_rmse_by_hand():
    true = frames([3, 4], [0, 0])
    pred = np.zeros_like(true)
    r = M.rmse(pred, true)
    assert r.shape == (1, 2)
    assert r[0, 0] == pytest.approx(math.sqrt((9 + 16) / 2))
    assert r[0, 1] == 0
    # whole rollout: sqrt of the mean over steps of the per-step MSE
    assert M.rmse_rollout(pred, true)[0] == pytest.approx(math.sqrt((12.5 + 0) / 2))
    # torch tensors are accepted and give the same numbers
    assert M.rmse(torch.zeros(1, 2, 1, 1, 2), torch.tensor(true))[0, 0] == \
        pytest.approx(math.sqrt(12.5))


def test_rmse_per_channel_and_channel_subset():
    true = np.zeros((1, 1, 2, 1, 2))
    true[0, 0, 0] = [[1, 1]]
    true[0, 0, 1] = [[2, 0]]
    pred = np.zeros_like(true)
    per = M.rmse_per_channel(pred, true)
    assert per.shape == (1, 1, 2)
    assert per[0, 0, 0] == pytest.approx(1.0)
    assert per[0, 0, 1] == pytest.approx(math.sqrt(2))
    assert M.rmse(pred, true, channels=[1])[0, 0] == pytest.approx(math.sqrt(2))
    assert M.rmse(pred, true)[0, 0] == pytest.approx(math.sqrt((1 + 1 + 4) / 4))


def test_vrmse_by_hand():
    true = frames([1, 3])  # mean 2, variance 1
    assert M.vrmse(frames([1, 1]), true)[0, 0, 0] == pytest.approx(math.sqrt(2 / (1 + 1e-7)))
    # predicting the spatial mean scores ~1
    assert M.vrmse(frames([2, 2]), true)[0, 0, 0] == pytest.approx(1.0, rel=1e-6)
    assert M.vrmse(true, true)[0, 0, 0] == 0


def test_energy_spectrum_single_modes():
    n = 16
    x = np.arange(n) + 0.5
    X, Y = np.meshgrid(x, x)
    u = np.cos(2 * np.pi * 2 * X / n)  # |k| = 2, energy 1/2 * mean(u^2) = 1/4
    e = M.energy_spectrum(u, np.zeros_like(u))
    assert e.shape == (n // 2,)
    assert e[1] == pytest.approx(0.25)
    assert np.delete(e, 1) == pytest.approx(0, abs=1e-12)
    v = np.sin(2 * np.pi * (3 * X + 4 * Y) / n)  # |k| = 5
    e = M.energy_spectrum(np.zeros_like(v), v)
    assert e[4] == pytest.approx(0.25)
    assert e.sum() == pytest.approx(0.25)


def test_spectrum_error_by_hand():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(2, 3, 3, 16, 16))
    assert M.spectrum_error(true, true) == pytest.approx(np.zeros((2, 3)))
    # scaling velocity by sqrt(10) multiplies every bin's energy by 10: error log10(10) = 1
    pred = true * math.sqrt(10)
    assert M.spectrum_error(pred, true) == pytest.approx(np.ones((2, 3)))


def test_divergence_by_hand():
    n = 8
    x = (np.arange(n) + 0.5) * 0.5  # spacing 0.5 from the coords
    y = np.arange(n) + 0.5  # spacing 1
    X, Y = np.meshgrid(x, y)
    # linear fields: central (and one-sided edge) differences are exact
    d = M.divergence(2 * X, 3 * Y, x, y)
    assert d == pytest.approx(np.full((n, n), 5.0))
    assert M.divergence(-Y, X, x, y) == pytest.approx(np.zeros((n, n)))
    # u = x^2: central difference 2x is exact inside
    d = M.divergence(X ** 2, np.zeros_like(X), x, y)
    assert d[:, 1:-1] == pytest.approx(2 * X[:, 1:-1])
    f = np.zeros((1, 2, 3, n, n))
    f[:, :, 0], f[:, :, 1] = 2 * X, 3 * Y
    assert M.divergence_rms(f, (0, 1), x, y) == pytest.approx(np.full((1, 2), 5.0))


def test_correlation_and_correlation_time():
    rng = np.random.default_rng(1)
    true = rng.normal(size=(2, 3, 2, 8, 8))
    assert M.correlation(2 * true + 1, true) == pytest.approx(np.ones((2, 3)))
    assert M.correlation(-true, true) == pytest.approx(-np.ones((2, 3)))
    ct = M.correlation_time(np.array([[0.99, 0.9, 0.7, 0.95], [0.9, 0.85, 0.81, 0.8]]),
                            dt=0.5)
    assert list(ct.steps) == [2, 4]  # leading steps >= 0.8; the second never drops
    assert list(ct.censored) == [False, True]
    assert list(ct.time) == [1.0, 2.0]
    assert M.correlation_time([0.5, 0.9]).steps[0] == 0


def test_rollout_metrics_and_aggregate():
    rng = np.random.default_rng(2)
    true = rng.normal(size=(3, 4, 3, 8, 8))
    pred = true + 0.1 * rng.normal(size=true.shape)
    m = M.rollout_metrics(pred, true, ("u", "v", "density"), ("u", "v"))
    for k in ("rmse", "rmse_u", "rmse_v", "rmse_density", "rmse_velocity", "vrmse",
              "vrmse_u", "corr", "spectrum_error", "div_pred", "div_true"):
        assert m[k].shape == (3, 4), k
    assert m["rmse_velocity"] == pytest.approx(M.rmse(pred, true, [0, 1]))
    agg = M.aggregate(m, dt=2.0)
    per_window = np.sqrt((m["rmse"] ** 2).mean(axis=1))
    assert agg["rmse"] == pytest.approx(per_window.mean())
    assert agg["rmse_std"] == pytest.approx(per_window.std())
    assert agg["corr_time_steps"] == 4 and agg["corr_time"] == 8.0
    assert agg["corr_time_censored"] == 1.0 and agg["n_windows"] == 3
    with pytest.raises(ValueError, match="differ in shape"):
        M.rmse(pred[:, :2], true)


def test_metrics_of_huge_float32_fields_are_finite():
    """Fields of order 1e29 are finite in float32 but their squares are not: every metric
    is computed in float64, so the scores stay finite and scale with the fields."""
    rng = np.random.default_rng(3)
    true = rng.normal(size=(2, 3, 3, 8, 8))
    pred = true + 0.1 * rng.normal(size=true.shape)
    small = M.rollout_metrics(pred, true, ("u", "v", "density"), ("u", "v"))
    huge = M.rollout_metrics((pred * 1e29).astype(np.float32),
                             (true * 1e29).astype(np.float32), ("u", "v", "density"),
                             ("u", "v"))
    for k in ("rmse", "rmse_u", "rmse_velocity", "div_pred", "div_true"):
        assert np.isfinite(huge[k]).all(), k
        np.testing.assert_allclose(huge[k], small[k] * 1e29, rtol=1e-5, err_msg=k)
    for k in ("vrmse", "corr", "spectrum_error"):  # scale-free
        np.testing.assert_allclose(huge[k], small[k], rtol=1e-4, atol=1e-6, err_msg=k)
