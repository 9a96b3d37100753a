"""Per-run warm-up: frames recorded after ``warmup_steps`` unsaved solver steps."""

import dataclasses

import numpy as np
import pytest

import simulate
from simulate.generate import plan_parts


def _pair(warmup: int):
    spec = simulate.preset("rotation", resolution=16, n_magnitudes=1, steps=6, save_every=2)
    first = spec.sims[0]
    late = dataclasses.replace(first, warmup_steps=warmup)
    return dataclasses.replace(spec, sims=[first, late], name="warmup_pair")


def test_warm_run_continues_the_cold_run(tmp_path):
    """Frame f of a run warmed up 4 steps is frame f + 2 of the same run from rest
    (save_every 2), to solver tolerance; the dataset records the warm-up."""
    spec = _pair(4)
    assert plan_parts(spec, 16) == [[0], [1]]        # a batch shares its warm-up
    s = simulate.generate(spec, tmp_path / "w.nc", progress=False)
    assert s["sim_steps_computed"] == 6 + 10
    ds = simulate.open_dataset(tmp_path / "w.nc", load=True)
    assert list(ds["warmup_steps"].values) == [0, 4]
    for v in ("u", "v", "density"):
        cold, warm = ds[v].values[0], ds[v].values[1]
        scale = np.abs(cold).max()
        np.testing.assert_allclose(warm[:2], cold[2:], atol=1e-4 * scale)
        assert np.abs(warm[3] - cold[3]).max() > 1e-3 * scale   # frame 3 is later in time
    assert simulate.ScenarioSpec.from_json(ds.attrs["spec"]).sims[1].warmup_steps == 4


def test_default_warmup_keeps_the_spec_hash_and_old_files_open(tmp_path):
    spec = simulate.preset("rotation", resolution=16, n_magnitudes=1, steps=2)
    assert "warmup_steps" not in spec.to_json()
    assert "late_start" not in spec.to_json()
    path = tmp_path / "old.nc"
    simulate.generate(spec, path, progress=False)
    ds = simulate.open_dataset(path, load=True).drop_vars("warmup_steps")
    old = tmp_path / "old_schema.nc"
    ds.to_netcdf(old)                   # a file written before the coordinate existed
    assert simulate.open_dataset(old).sizes["sim"] == 4


def test_late_start_preset():
    spec = simulate.preset("rotation", resolution=16, n_magnitudes=4, steps=2, late_start=10)
    late = [s for s in spec.sims if s.warmup_steps]
    assert late and all(s.warmup_steps == 10 for s in late)
    assert all(not s.heldout and s.magnitude_index % 2 == 1 for s in late)
    # all four walls of a late magnitude are late unless held out (no rotated twin early)
    for s in spec.sims:
        if s.magnitude_index % 2 == 1 and not s.heldout:
            assert s.warmup_steps == 10
    assert any(s.heldout for s in spec.sims) and all(s.warmup_steps == 0 for s in spec.sims if s.heldout)
    sym = simulate.preset("symmetric", resolution=16, n_magnitudes=2, steps=2, late_start=4)
    assert {s.warmup_steps for s in sym.sims if s.magnitude_index == 1 and not s.heldout} == {4}


@pytest.mark.parametrize("bad", [-1, 2.5, True, "10"])
def test_bad_warmup_is_refused(bad):
    with pytest.raises(simulate.SpecError, match="late_start|warmup_steps"):
        simulate.preset("rotation", resolution=16, n_magnitudes=2, steps=2, late_start=bad)
    with pytest.raises(simulate.SpecError, match="warmup_steps"):
        simulate.SimSpec(inflow_x=8, inflow_y=2, warmup_steps=bad)


def test_symmetric_data_stay_symmetric_with_late_starts(tmp_path):
    """data_equivariance_error compares runs only at equal warm-up: a held-out run of a
    late magnitude (recorded from rest) is not compared with its late siblings."""
    spec = simulate.preset("symmetric", resolution=16, n_magnitudes=3, steps=4, late_start=4)
    warm = {(s.magnitude_index, s.warmup_steps) for s in spec.sims}
    assert (1, 0) in warm and (1, 4) in warm          # mixed warm-ups within magnitude 1
    simulate.generate(spec, tmp_path / "sym.nc", progress=False)
    ds = simulate.open_dataset(tmp_path / "sym.nc", load=True)
    same_time = simulate.data_equivariance_error(ds)
    # comparing across warm-ups (coordinate dropped) is what the check avoids
    mixed = simulate.data_equivariance_error(ds.drop_vars("warmup_steps"))
    assert same_time < 1e-5 and mixed > 100 * same_time


def test_warmup_round_trips_through_toml(tmp_path):
    spec = simulate.preset("rotation", resolution=16, n_magnitudes=2, steps=2, late_start=6)
    path = tmp_path / "late.toml"
    path.write_text(simulate.spec_to_toml(spec))
    again = simulate.load_spec(path)
    assert [s.warmup_steps for s in again.sims] == [s.warmup_steps for s in spec.sims]
    assert simulate.spec_hash(again) == simulate.spec_hash(spec)


@pytest.mark.parametrize("name", ["translation", "boundary", "breaking_sweep"])
def test_late_start_in_every_preset(name):
    plain = simulate.preset(name, resolution=32)
    late = simulate.preset(name, resolution=32, late_start=8)
    assert simulate.spec_hash(plain) == simulate.spec_hash(simulate.preset(name, resolution=32,
                                                                           late_start=0))
    warm = [s for s in late.sims if s.warmup_steps]
    assert 0 < len(warm) < len(late.sims) and all(s.warmup_steps == 8 and not s.heldout for s in warm)
    # the physics of each run is unchanged, only where its record starts
    strip = [dataclasses.replace(s, warmup_steps=0) for s in late.sims]
    assert strip == plain.sims


def test_boundary_late_twins_keep_the_record_from_rest():
    kw = dict(resolution=16, n_inflows=4, n_magnitudes=4, steps=2, late_start=6)
    plain = simulate.preset("boundary", **kw)
    twins = simulate.preset("boundary", late_twins=True, **kw)
    n = len(plain.sims)
    # the first n runs are the plain preset's, all recorded from rest
    assert [dataclasses.replace(s, warmup_steps=0) for s in plain.sims] == twins.sims[:n]
    assert all(s.warmup_steps == 0 for s in twins.sims[:n])
    # one late twin per odd-magnitude training run, appended in order
    odd = [s for s in plain.sims if s.warmup_steps]
    assert odd and twins.sims[n:] == odd
    assert all(s.warmup_steps == 6 and not s.heldout for s in twins.sims[n:])
    assert "late_twins" not in plain.to_json() and "late_twins" in twins.to_json()
    # without a late start there is nothing to twin, and the spec (and hash) are the same
    assert simulate.preset("boundary", resolution=16, steps=2, late_twins=True).to_json() == \
        simulate.preset("boundary", resolution=16, steps=2).to_json()
    with pytest.raises(simulate.SpecError, match="late_twins"):
        simulate.preset("boundary", late_twins="yes", **kw)
