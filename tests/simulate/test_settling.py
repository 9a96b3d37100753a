"""Hidden breaking: smoke that settles in a fixed direction (``settling``), and the
rotation set with per-wall magnitude bands. Physics by invariants, presets by their
specs, and the breaking parameter checked in the written data."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import simulate  # noqa: E402
from simulate.phiflow_step import settle  # noqa: E402
from simulate.spec import SpecError  # noqa: E402


def _settled(density: np.ndarray, drift, steps: int) -> np.ndarray:
    """``settle`` applied ``steps`` times to ``density`` ``(n, y, x)`` with per-sim
    ``drift`` ``(n, 2)``; returns ``(n, y, x)``."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from phi.torch import flow
    math_ = flow.math
    n, H, W = density.shape
    with flow.TORCH:
        grid = flow.CenteredGrid(math_.tensor(np.swapaxes(density, 1, 2), flow.batch("sim"),
                                              flow.spatial("x,y")),
                                 flow.ZERO_GRADIENT, flow.Box(x=W, y=H), x=W, y=H)
        w = math_.tensor(np.asarray(drift, float), flow.batch("sim"), flow.channel(vector="x,y"))
        for _ in range(steps):
            grid = settle(grid, w, 1.0, 1.0)
        return grid.values.numpy("sim,y,x")


def _blob(n=32):
    yy, xx = np.mgrid[:n, :n] + 0.5
    return np.exp(-((xx - n / 2) ** 2 + (yy - n / 2) ** 2) / 8.0)


def test_settling_moves_the_centre_of_mass_at_its_speed_and_conserves_mass():
    d0 = np.stack([_blob(), _blob()])
    d = _settled(d0, [(0.0, -0.3), (0.25, 0.0)], 10)
    yy, xx = np.mgrid[:32, :32] + 0.5
    for k, (dx, dy) in enumerate([(0.0, -3.0), (2.5, 0.0)]):
        assert d[k].sum() == pytest.approx(d0[k].sum(), rel=1e-5)     # nothing reached a wall
        cx = (d[k] * xx).sum() / d[k].sum() - (d0[k] * xx).sum() / d0[k].sum()
        cy = (d[k] * yy).sum() / d[k].sum() - (d0[k] * yy).sum() / d0[k].sum()
        assert (cx, cy) == pytest.approx((dx, dy), abs=1e-4)
        assert d[k].min() >= 0


def test_smoke_that_settles_onto_the_floor_is_deposited_and_none_enters_at_the_top():
    d0 = np.stack([_blob()])
    d = _settled(d0, [(0.0, -0.5)], 200)
    assert d.sum() < 1e-3 * d0.sum()            # everything left through the floor
    assert d.min() >= 0
    top = np.zeros((1, 32, 32))
    top[0, -1, :] = 1.0                          # smoke in the top row only
    d = _settled(top, [(0.0, -0.5)], 1)
    assert d[0, -1].sum() == pytest.approx(16.0)   # half left the row, nothing came in
    assert d[0, -2].sum() == pytest.approx(16.0)


def test_settling_preset_sets_one_fixed_direction_and_its_twin_is_symmetric():
    spec = simulate.preset("settling", resolution=32, n_magnitudes=2, settling_speed=0.2)
    assert {s.settling for s in spec.sims} == {(0.0, -0.2)}
    assert {s.wall for s in spec.sims} == {0, 1, 2, 3}
    twin = simulate.preset("settling", resolution=32, n_magnitudes=2, settling_speed=0.0)
    sym = simulate.preset("symmetric", resolution=32, n_magnitudes=2)
    assert [s.settling for s in twin.sims] == [None] * len(twin.sims)
    assert twin.to_dict()["sims"] == sym.to_dict()["sims"]


@pytest.mark.parametrize("params, words", [
    ({"settling_speed": -0.1}, "settling_speed must be a non-negative number"),
    ({"settling_speed": 2.0}, "moves more than one cell per step"),
])
def test_bad_settling_is_one_clear_error(params, words):
    with pytest.raises(SpecError, match=words):
        simulate.preset("settling", resolution=32, n_magnitudes=1, **params)


def test_settling_with_an_obstacle_is_refused():
    spec = simulate.preset("settling", resolution=32, n_magnitudes=1)
    spec.sims[0].obstacle = (20.0, 20.0, 24.0, 24.0)
    with pytest.raises(SpecError, match="settling with an obstacle"):
        spec.validate()


def test_specs_without_settling_keep_their_hash():
    spec = simulate.preset("rotation", resolution=32, n_magnitudes=2)
    assert "settling" not in spec.to_json()
    assert simulate.spec_hash(spec) == "dc6b0f08ace5ee8a"     # as before the option existed
    assert simulate.spec_hash(simulate.preset("rotation", resolution=32, n_magnitudes=2,
                                              bands=False)) == "dc6b0f08ace5ee8a"


def test_rotation_bands_give_each_wall_its_own_magnitudes():
    spec = simulate.preset("rotation", resolution=32, n_magnitudes=3, bands=True)
    mags = {}
    for s in spec.sims:
        mags.setdefault(s.wall, []).append(math.hypot(*s.buoyancy))
    ranges = sorted((min(v), max(v)) for v in mags.values())
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))     # disjoint bands
    inter = simulate.preset("rotation", resolution=32, n_magnitudes=3)
    imags = {}
    for s in inter.sims:
        imags.setdefault(s.wall, []).append(math.hypot(*s.buoyancy))
    iranges = sorted((min(v), max(v)) for v in imags.values())
    assert not all(a[1] < b[0] for a, b in zip(iranges, iranges[1:]))  # interleaved
    with pytest.raises(SpecError, match="bands must be true or false"):
        simulate.preset("rotation", resolution=32, bands="yes")


@pytest.fixture(scope="module")
def settling_pair(by_settling_speed):
    """``settling`` at 0.3 and its symmetric twin, 2 magnitudes x 4 walls, 24 steps."""
    return by_settling_speed("settling", (0.3, 0.0), resolution=16, n_magnitudes=2,
                             steps=24, save_every=2)


def test_the_written_data_settle_and_the_twin_does_not(settling_pair):
    ds, twin = settling_pair[0.3], settling_pair[0.0]
    y = ds["y"].values[:, None]
    # the bottom-wall plume (buoyancy up, settling down) sits lower than the rotated
    # top-wall plume of the same magnitude; in the twin they are rotations of each other
    for data, lower in ((ds, True), (twin, False)):
        j = data["magnitude_index"].values
        w = data["wall"].values
        d = data["density"].isel(time=-1).values
        bottom = d[(w == 0) & (j == 1)][0]
        top = d[(w == 2) & (j == 1)][0][::-1, ::-1]          # rotated by a half turn
        cy = lambda a: float((a * y).sum() / a.sum())  # noqa: E731
        assert (cy(bottom) < cy(top) - 0.05) == lower
    assert simulate.data_equivariance_error(ds) > 10 * simulate.data_equivariance_error(twin)
    assert '"settling": [0.0, -0.3]' in ds.attrs["spec"]


@pytest.mark.parametrize("name", ["settling", "symmetric"])
def test_held_out_by_magnitude_holds_out_every_wall_of_unseen_magnitudes(name):
    runs = simulate.preset(name, resolution=32, n_magnitudes=8)
    mags = simulate.preset(name, resolution=32, n_magnitudes=8, held_out="magnitudes")
    # the default keeps the hash it had before the option existed
    assert simulate.spec_hash(runs) == {"settling": "838f437015a56a2c",
                                        "symmetric": "f7a96497bee0ca1e"}[name]
    assert "held_out" not in runs.to_json()
    held = {(s.magnitude_index, s.wall) for s in mags.sims if s.heldout}
    assert held == {(j, k) for j in (2, 6) for k in range(4)}   # 28% of 8: two, spread
    trained = {s.magnitude_index for s in mags.sims if not s.heldout}
    assert trained.isdisjoint({2, 6}) and len(trained) == 6
    # with runs held out, every held-out run has its magnitude on another wall in training
    seen = {s.magnitude_index for s in runs.sims if not s.heldout}
    assert all(s.magnitude_index in seen for s in runs.sims if s.heldout)
    assert [(s.buoyancy, s.settling) for s in mags.sims] == \
        [(s.buoyancy, s.settling) for s in runs.sims]


@pytest.mark.parametrize("params, words", [
    ({"held_out": "walls"}, "held_out must be one of"),
    ({"held_out": "magnitudes", "n_magnitudes": 1}, "needs more magnitudes"),
])
def test_bad_held_out_is_one_clear_error(params, words):
    with pytest.raises(SpecError, match=words):
        simulate.preset("settling", resolution=32, **{"n_magnitudes": 4, **params})
