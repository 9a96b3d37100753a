"""The observability probe on data written by hand (the cause known exactly), and on a
real rotation set, where the paper's magnitudes are readable from one frame but not
from the wall."""

import json

import numpy as np
import pytest
import xarray as xr

from evaluate.observability import breaking_cause, frame_statistics, observability, ridge_r2


def _dataset(cause_in_frame: bool, n_mag: int = 6, seed: int = 0) -> xr.Dataset:
    """4 walls x ``n_mag`` runs, 8x8, 4 frames. The log buoyancy magnitude is random per
    run; with ``cause_in_frame`` the density's mass scales with it (readable from any
    frame), else the frames are the same for every run."""
    rng = np.random.default_rng(seed)
    n = 4 * n_mag
    wall = np.tile(np.arange(4), n_mag)
    logb = rng.uniform(-5, -2, n)
    base = rng.random((4, 8, 8)) + 0.1
    scale = np.exp(logb) if cause_in_frame else np.ones(n)
    dens = base[None] * scale[:, None, None, None]
    angle = wall * np.pi / 2
    bx, by = -np.sin(angle) * np.exp(logb), np.cos(angle) * np.exp(logb)
    held = np.zeros(n, bool)
    held[[0, 5, 10, 15, 17, 22]] = True       # every wall keeps training runs
    return xr.Dataset(
        {"u": (("sim", "time", "y", "x"), np.zeros_like(dens) + 0.01),
         "v": (("sim", "time", "y", "x"), np.zeros_like(dens) + 0.02),
         "density": (("sim", "time", "y", "x"), dens)},
        coords={"sim": np.arange(n), "wall": ("sim", wall), "heldout": ("sim", held),
                "magnitude_index": ("sim", np.full(n, -1)),
                "buoyancy_vx": ("sim", bx), "buoyancy_vy": ("sim", by),
                "inflow_x": ("sim", 4 + np.cos(angle)), "inflow_y": ("sim", 4 + np.sin(angle))},
        attrs={"spec": json.dumps({"sims": [{} for _ in range(n)]}), "box_size": 8.0})


def test_a_cause_written_into_the_frame_is_read_from_one_frame_and_not_from_the_wall():
    res = observability(_dataset(True), frames=(1, 3))
    assert res.cause == "log buoyancy magnitude"
    assert res.frame[1] > 0.99 and res.frame[3] > 0.99
    assert res.orientation < 0.3            # random magnitudes: the wall says nothing
    assert "R²" in res.line()


def test_a_cause_the_frames_do_not_show_is_not_read_from_them():
    res = observability(_dataset(False), frames=(1,))
    assert res.frame[1] < 0.3


def test_settling_along_the_buoyancy_is_the_cause_and_the_wall_tells_it():
    ds = _dataset(False)
    spec = {"sims": [{"settling": [0.0, -0.3]} for _ in range(ds.sizes["sim"])]}
    ds.attrs["spec"] = json.dumps(spec)
    name, y = breaking_cause(ds)
    assert name == "settling velocity along the buoyancy"
    # bottom wall: buoyancy up, settling down (-0.3); top: +0.3; the side walls: 0
    assert y[ds["wall"].values == 0] == pytest.approx(-0.3)
    assert y[ds["wall"].values == 2] == pytest.approx(0.3)
    assert y[ds["wall"].values % 2 == 1] == pytest.approx(0.0, abs=1e-12)
    res = observability(ds, frames=(1,))
    assert res.orientation == pytest.approx(1.0, abs=1e-3)
    assert res.frame[1] < 0.3


def test_magnitudes_that_do_not_depend_on_the_wall_are_no_breaking_cause():
    ds = _dataset(True)
    j = np.repeat(np.arange(6), 4)           # the same magnitude on each wall of a block
    ds = ds.assign_coords(magnitude_index=("sim", j))
    b = np.exp(-3 - 0.2 * j)
    ang = ds["wall"].values * np.pi / 2
    ds = ds.assign_coords(buoyancy_vx=("sim", -np.sin(ang) * b), buoyancy_vy=("sim", np.cos(ang) * b))
    res = observability(ds)
    assert res.cause.startswith("none") and not res.frame
    assert "no breaking cause" in res.line()


def test_frame_statistics_do_not_change_under_the_square_group():
    rng = np.random.default_rng(1)
    u, v, d = rng.normal(size=(3, 2, 8, 8))
    d = np.abs(d)
    s0 = frame_statistics(u, v, d)
    # a quarter turn counter-clockwise: fields rotate, the vector (u, v) -> (-v, u)
    ru, rv, rd = (np.rot90(a, 1, axes=(1, 2)) for a in (u, v, d))
    s1 = frame_statistics(-rv, ru, rd)
    s2 = frame_statistics(-u[:, :, ::-1], v[:, :, ::-1], d[:, :, ::-1])   # mirror x -> -x
    assert s1 == pytest.approx(s0, rel=1e-9, abs=1e-9)
    assert s2 == pytest.approx(s0, rel=1e-9, abs=1e-9)


def test_ridge_r2_is_one_for_a_linear_law_and_negative_for_noise():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3))
    train = np.arange(40) < 30
    assert ridge_r2(X, X @ [1.0, -2.0, 0.5] + 3, train, lam=1e-9) == pytest.approx(1, abs=1e-6)
    assert ridge_r2(X, rng.normal(size=40), train) < 0.3


def test_on_rotation_the_magnitude_shows_in_one_frame_but_not_in_the_wall(tmp_path):
    import simulate
    spec = simulate.preset("rotation", resolution=16, n_magnitudes=5, steps=12,
                           save_every=2, base_buoyancy=0.005)
    path = tmp_path / "rot.nc"
    simulate.generate(spec, path, progress=False)
    with simulate.open_dataset(path) as ds:
        res = observability(ds, frames=(2, 5))
    assert res.frame[2] > 0.95 and res.frame[5] > 0.95
    assert res.orientation < 0.2


def _rotated_runs(n_mag: int = 6, settling: bool = True) -> xr.Dataset:
    """4 walls x ``n_mag`` runs, 8x8, 4 frames, no flow: the run from wall ``k`` is the
    wall-0 run turned ``k`` quarter turns, so no invariant function of a frame can tell
    the walls apart; the density's amplitude grows with the magnitude index. Every run
    settles straight down, so the cause (settling along the buoyancy) is -0.3 at the
    bottom wall, +0.3 at the top and 0 at the sides: the orientation alone gives it."""
    rng = np.random.default_rng(1)
    base = rng.random((4, 8, 8)) + 0.1
    wall, j = np.tile(np.arange(4), n_mag), np.repeat(np.arange(n_mag), 4)
    dens = np.stack([np.rot90(base, k, axes=(1, 2)) * (1 + jj) for k, jj in zip(wall, j)])
    ds = _dataset(False, n_mag)
    for k, v in (("density", dens), ("u", 0 * dens), ("v", 0 * dens)):
        ds[k] = (("sim", "time", "y", "x"), v)
    spec = {"sims": [{"settling": [0.0, -0.3] if settling else None} for _ in wall]}
    ds.attrs["spec"] = json.dumps(spec)
    return ds


def test_the_strict_network_reads_a_cause_written_into_the_frame():
    ds = _dataset(True)
    ds["density"] = ds["density"] * 0 + (np.log(np.hypot(ds["buoyancy_vx"], ds["buoyancy_vy"]))
                                         + 6.0) * (ds["density"] / ds["density"])
    res = observability(ds, frames=(1,), invariant=True)
    assert res.invariant[1] > 0.9
    assert "through a strict network (frame 1" in res.line()


def test_the_strict_network_cannot_read_a_cause_only_the_orientation_tells():
    ds = _rotated_runs()
    res = observability(ds, frames=(1,), invariant=True)
    assert res.orientation > 0.99          # the wall gives the cause exactly
    assert res.invariant[1] < 0.2          # an invariant function of the frame cannot


def test_the_strict_network_probe_leaves_the_global_rng_alone():
    import torch
    from evaluate.invariant_probe import invariant_r2
    ds = _rotated_runs()
    name, y = breaking_cause(ds)
    train = ~np.asarray(ds["heldout"].values, bool)
    torch.manual_seed(123)
    a = invariant_r2(ds, y, train, (1,), steps=5)
    after = torch.rand(1)
    torch.manual_seed(123)
    b = invariant_r2(ds, y, train, (1,), steps=5)
    assert a == b and torch.equal(after, torch.rand(1))


def test_the_strict_network_probe_fits_on_one_thread_and_restores_the_count(monkeypatch):
    import torch
    import evaluate.invariant_probe as ip
    ds = _rotated_runs()
    name, y = breaking_cause(ds)
    train = ~np.asarray(ds["heldout"].values, bool)
    seen, fit = [], ip._fit

    def spy(*args):
        seen.append(torch.get_num_threads())
        return fit(*args)
    monkeypatch.setattr(ip, "_fit", spy)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        a = ip.invariant_r2(ds, y, train, (1,), steps=20)
        assert seen == [1] and torch.get_num_threads() == 2      # one thread, then restored
        torch.set_num_threads(1)
        assert ip.invariant_r2(ds, y, train, (1,), steps=20) == a
    finally:
        torch.set_num_threads(before)
