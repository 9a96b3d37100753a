import math

import numpy as np
import pytest

import simulate
from simulate.spec_toml import load_spec, spec_to_toml


@pytest.mark.parametrize("name", simulate.available_scenarios())
def test_presets_validate_and_hold_out_a_quarter(name):
    spec = simulate.preset(name)
    n = len(spec.sims)
    held = [s for s in spec.sims if s.heldout]
    assert 0.2 <= len(held) / n <= 0.3, (name, len(held), n)
    walls = {s.wall for s in spec.sims if s.wall >= 0}
    if len(walls) > 1:
        for w in walls:      # never every simulation of one wall
            assert not all(s.heldout for s in spec.sims if s.wall == w)


def test_rotation_is_the_paper_setup():
    spec = simulate.preset("rotation")
    assert spec.resolution == 64 and spec.steps == 310 and len(spec.sims) == 36
    positions = [(s.inflow_x, s.inflow_y) for s in spec.sims[:4]]
    assert positions == [(32, 5), (59, 32), (32, 59), (5, 32)]
    assert all(s.inflow_radius == 5 for s in spec.sims)
    for s in spec.sims[:4]:      # buoyancy points away from the wall
        bx, by = s.buoyancy
        assert (bx * (s.inflow_x - 32) + by * (s.inflow_y - 32)) < 0
    mags = [math.hypot(*s.buoyancy) for s in spec.sims]
    assert len(set(np.round(mags, 12))) == 36           # differ between walls and runs


def test_symmetric_magnitudes_equal_across_walls():
    spec = simulate.preset("symmetric", n_magnitudes=3)
    for j in range(3):
        mags = {round(math.hypot(*s.buoyancy), 15) for s in spec.sims if s.magnitude_index == j}
        assert len(mags) == 1


def test_breaking_sweep_level_zero_is_symmetric():
    spec = simulate.preset("breaking_sweep", levels=[0.0, 1.0], n_magnitudes=1)
    by_level = {}
    for s in spec.sims:
        by_level.setdefault(s.level, []).append(math.hypot(*s.buoyancy))
    assert len(set(np.round(by_level[0.0], 15))) == 1
    ratios = np.array(by_level[1.0]) / by_level[1.0][0]
    np.testing.assert_allclose(ratios, [1, 4, 7, 10])


@pytest.mark.parametrize("bad, match", [
    (dict(resolution=0), "resolution"),
    (dict(steps=0), "steps"),
    (dict(save_every=0), "save_every"),
    (dict(wall_distance=-2.0), "outside the box"),
    (dict(inflow_radius=0.0), "inflow_radius"),
    (dict(n_magnitudes=0), "n_magnitudes"),
    (dict(bogus=1), "no parameter"),
])
def test_bad_parameters_raise_spec_error(bad, match):
    with pytest.raises(simulate.SpecError, match=match):
        simulate.preset("rotation", **bad)


def test_unknown_scenario():
    with pytest.raises(simulate.SpecError, match="unknown scenario"):
        simulate.preset("spiral")


def test_obstacle_must_sit_on_cell_faces():
    spec = simulate.preset("boundary", resolution=32)
    spec.sims[0].obstacle = (10.3, 10.0, 14.0, 12.0)
    with pytest.raises(simulate.SpecError, match="cell faces"):
        spec.validate()


@pytest.mark.parametrize("name", simulate.available_scenarios())
def test_toml_round_trip(tmp_path, name):
    spec = simulate.preset(name, resolution=32)
    p = tmp_path / "spec.toml"
    p.write_text(spec_to_toml(spec))
    assert load_spec(p).to_json() == spec.to_json()
    assert simulate.ScenarioSpec.from_json(spec.to_json()).to_json() == spec.to_json()


def test_user_toml_with_preset_and_full_spec(tmp_path):
    p = tmp_path / "a.toml"
    p.write_text('preset = "translation"\n[params]\nresolution = 32\nnx = 2\nny = 1\n')
    spec = load_spec(p)
    assert spec.name == "translation" and len(spec.sims) == 2
    q = tmp_path / "mine.toml"
    q.write_text('resolution = 16\nsteps = 5\n[[sims]]\ninflow_x = 8.0\ninflow_y = 2.0\ninflow_radius = 1.5\n'
                 'buoyancy = [0.0, 0.1]\n')
    spec = load_spec(q)
    assert spec.name == "mine" and spec.sims[0].buoyancy == (0.0, 0.1)
    q.write_text('resolution = 16\n[[sims]]\ninflow_x = 80.0\ninflow_y = 2.0\n')
    with pytest.raises(simulate.SpecError, match="outside the box"):
        load_spec(q)


def test_sweep_parameters_really_vary_in_the_data(rotation_data, translation_data, sweep_data, boundary_data):
    """A sweep that silently does not sweep (PDEArena's bug) must fail here."""
    _, _, rot = rotation_data
    assert len(np.unique(rot.buoyancy_magnitude.values)) == rot.sizes["sim"]
    assert sorted(np.unique(rot.wall.values)) == [0, 1, 2, 3]
    # the cause fields carry the per-sim buoyancy, and the flows differ
    assert len({float(b) for b in np.hypot(rot.buoyancy_x, rot.buoyancy_y).max(("x", "y")).values}) == rot.sizes["sim"]
    last = rot.density.isel(time=-1).values.reshape(rot.sizes["sim"], -1)
    assert np.linalg.matrix_rank(last) == rot.sizes["sim"]

    _, _, tr = translation_data
    assert len(np.unique(tr.inflow_x.values)) == 2 and len(np.unique(tr.inflow_y.values)) == 2
    by = tr.buoyancy_y.isel(sim=0).values
    assert by[:, 0].max() == pytest.approx(0.1) and by[:, -1].min() == pytest.approx(0.2)
    assert (tr.split_x.values == 16).all()

    _, _, sw = sweep_data
    assert sorted(np.unique(sw.level.values)) == [0.0, 0.5, 1.0]
    for lv in (0.5, 1.0):
        assert len(np.unique(sw.buoyancy_magnitude.values[sw.level.values == lv])) == 4

    _, _, bd = boundary_data
    assert len(np.unique(bd.inflow_x.values)) == 2 and len(np.unique(bd.buoyancy_magnitude.values)) == 2
    assert not np.isnan(bd.obstacle_x0.values).any()
