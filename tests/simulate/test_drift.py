"""Breaking no frame shows: a tracer stirred in a periodic box that settles one way
(``drift``). Physics by invariants (mass, centre of mass, exact rotations), the stirred
start by its symmetry, the preset by its spec, and the breaking checked in the written
data."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import simulate  # noqa: E402
from evaluate.observability import breaking_cause, observability  # noqa: E402
from simulate.phiflow_step import settle  # noqa: E402
from simulate.spec import ScenarioSpec, SpecError  # noqa: E402
from simulate.spec_toml import load_spec, spec_to_toml  # noqa: E402
from simulate.stirring import stirred_start  # noqa: E402
from simulate.symmetry import transform_fields  # noqa: E402


def _settled_periodic(density: np.ndarray, drift, steps: int) -> np.ndarray:
    """``settle`` on a periodic grid, ``steps`` times, ``density`` ``(y, x)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from phi.torch import flow
    m = flow.math
    H, W = density.shape
    with flow.TORCH:
        grid = flow.CenteredGrid(m.tensor(density.T, flow.spatial("x,y")), flow.PERIODIC,
                                 flow.Box(x=W, y=H), x=W, y=H)
        w = m.tensor(np.asarray(drift, float), flow.channel(vector="x,y"))
        for _ in range(steps):
            grid = settle(grid, w, 1.0, 1.0, periodic=True)
        return grid.values.numpy("y,x")


def _circular_centre(d: np.ndarray, axis: int) -> float:
    """The centre of mass along ``axis`` of a periodic field, in cells."""
    n = d.shape[axis]
    phase = np.exp(2j * np.pi * (np.arange(n) + 0.5) / n)
    profile = d.sum(axis=1 - axis)
    return float(np.angle((profile * phase).sum()) * n / (2 * np.pi))


def test_periodic_settling_wraps_around_conserves_mass_and_moves_at_its_speed():
    n = 16
    yy, xx = np.mgrid[:n, :n] + 0.5
    d0 = np.exp(-((xx - 8) ** 2 + (yy - 3) ** 2) / 4.0)     # near the floor
    d = _settled_periodic(d0, (0.0, -0.5), 20)               # 10 cells down: through it
    assert d.sum() == pytest.approx(d0.sum(), rel=1e-6)     # nothing leaves the box
    assert d.min() >= 0
    moved = (_circular_centre(d, 0) - _circular_centre(d0, 0)) % n
    assert moved == pytest.approx(n - 10.0, abs=1e-3)        # came back in at the top
    assert _circular_centre(d, 1) == pytest.approx(_circular_centre(d0, 1), abs=1e-6)


def test_the_stirred_start_is_divergence_free_turnable_and_seeded():
    u, v, d = stirred_start(32, 0, 3, 0.5, 0)
    assert np.sqrt(np.mean(u ** 2 + v ** 2)) == pytest.approx(0.5)
    # spectral derivatives: the centred difference of the stream function's velocity
    div = (np.roll(u, -1, 1) - np.roll(u, 1, 1)) / 2 + (np.roll(v, -1, 0) - np.roll(v, 1, 0)) / 2
    assert np.abs(div).max() < 0.02 * np.abs(u).max()
    assert d.min() >= 0 and d.max() <= 2
    for k in (1, 2, 3):
        turned = stirred_start(32, 0, 3, 0.5, k)
        for a, b in zip(transform_fields(u, v, d, k=k), turned):
            np.testing.assert_array_equal(a, b)
    again, other = stirred_start(32, 0, 3, 0.5, 0), stirred_start(32, 0, 4, 0.5, 0)
    np.testing.assert_array_equal(again[2], d)
    assert np.abs(other[2] - d).max() > 0.5


def test_drift_preset_turns_each_start_four_ways_and_holds_out_whole_starts(tmp_path):
    spec = simulate.preset("drift", resolution=32, n_patterns=8)
    assert spec.periodic and len(spec.sims) == 32
    assert {(s.initial_pattern, s.initial_turns) for s in spec.sims} == \
        {(j, k) for j in range(8) for k in range(4)}
    assert all(s.settling == (0.0, -0.6) and s.buoyancy == (0.0, 0.0) and s.inflow_rate == 0
               for s in spec.sims)
    held = {(s.initial_pattern, s.initial_turns) for s in spec.sims if s.heldout}
    assert held == {(j, k) for j in (2, 6) for k in range(4)}
    twin = simulate.preset("drift", resolution=32, settling_speed=0.0)
    assert all(s.settling is None for s in twin.sims)
    back = ScenarioSpec.from_json(spec.to_json())
    assert back.periodic and back.to_json() == spec.to_json()
    (tmp_path / "drift.toml").write_text(spec_to_toml(spec))
    assert load_spec(tmp_path / "drift.toml").to_json() == spec.to_json()


@pytest.mark.parametrize("change, words", [
    (lambda s: setattr(s.sims[0], "open_walls", ("top",)), "periodic box has no walls"),
    (lambda s: setattr(s.sims[0], "initial_pattern", -1), "need an initial_pattern"),
    (lambda s: setattr(s.sims[0], "initial_speed", -1.0), "initial_speed must be"),
    (lambda s: setattr(s.sims[0], "initial_turns", 4), "initial_turns must be 0..3"),
    (lambda s: setattr(s, "periodic", False), "stirred start .* needs a periodic box"),
])
def test_bad_periodic_or_stirred_specs_are_one_clear_error(change, words):
    spec = simulate.preset("drift", resolution=16)
    change(spec)
    with pytest.raises(SpecError, match=words) as err:
        spec.validate()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("params, words", [
    ({"initial_speed": 0.0}, "initial_speed must be a positive"),
    ({"n_patterns": 1}, "n_patterns must be at least 2"),
    ({"n_patterns": 2, "heldout_fraction": 0.9}, "holds out every one of the 2 patterns"),
])
def test_bad_drift_parameters_are_one_clear_error(params, words):
    with pytest.raises(SpecError, match=words) as err:
        simulate.preset("drift", resolution=16, **params)
    assert "\n" not in str(err.value)


def test_specs_without_a_stirred_start_keep_their_hash():
    spec = simulate.preset("settling", resolution=32, n_magnitudes=8)
    text = spec.to_json()
    assert "periodic" not in text and "initial_" not in text
    assert simulate.spec_hash(spec) == "838f437015a56a2c"       # as before the option


@pytest.fixture(scope="module")
def drift_pair(by_settling_speed):
    """``drift`` at 0.6 and its twin, 4 starts x 4 turns, 16x16, 24 steps."""
    return by_settling_speed("drift", (0.6, 0.0), resolution=16, n_patterns=4, steps=24,
                             save_every=2)


def test_the_written_drift_breaks_only_the_density_and_the_twin_nothing(drift_pair):
    ds, twin = drift_pair[0.6], drift_pair[0.0]
    # the velocity obeys D4 exactly in both: the turns of a start stay rotations
    assert simulate.data_equivariance_error(ds) < 1e-5
    assert simulate.data_equivariance_error(twin, ("u", "v", "density")) < 1e-5
    assert simulate.data_equivariance_error(ds, ("density",)) > 0.05
    # the tracer is conserved (periodic box, conservative settling; the advection's own
    # error stays small) and the flow decays without stopping
    mass = ds["density"].sum(("x", "y")).values
    assert np.abs(mass / mass[:, :1] - 1).max() < 0.05
    speed = np.sqrt((ds["u"] ** 2 + ds["v"] ** 2).mean(("x", "y"))).values
    assert (speed[:, -1] < speed[:, 0]).all() and (speed[:, -1] > 0.3 * speed[:, 0]).all()
    assert '"settling": [0.0, -0.6]' in ds.attrs["spec"] and '"periodic": true' in ds.attrs["spec"]


def test_no_frame_statistic_tells_the_turn_and_the_orientation_does(drift_pair):
    ds = drift_pair[0.6]
    name, y = breaking_cause(ds)
    assert "turned y axis" in name
    turns = ds["wall"].values
    np.testing.assert_allclose(y, np.choose(turns % 4, [-0.6, 0.0, 0.6, 0.0]), atol=1e-12)
    res = observability(ds, frames=(2,))
    assert res.orientation == pytest.approx(1.0)
    assert res.frame[2] < 0.2
    assert breaking_cause(drift_pair[0.0]) == ("none (nothing settles and nothing is buoyant)",
                                               None)
