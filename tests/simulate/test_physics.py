"""Physics checks on real (small) PhiFlow runs."""

import numpy as np
import pytest

import simulate
from simulate.phiflow_step import SimulationError, cause_fields, simulate_batch


def test_projected_velocity_is_divergence_free():
    spec = simulate.preset("rotation", resolution=32, n_magnitudes=2, steps=12)
    out = simulate_batch(spec, list(range(8)), return_state=True)
    assert out["stats"]["max_residual_over_tolerance"] <= 1.0 + 1e-6   # every step converged
    from phi.torch.flow import field, math
    vel = out["state"]["velocity"]
    with math.precision(64):
        div = field.divergence(vel).values.numpy("sim,y,x")
    # CG stops at ||div||_2 <= max(1e-5 ||rhs||_2, 1e-5 * res): per cell far below the flow scale
    assert np.sqrt((div ** 2).sum(axis=(1, 2))).max() <= spec.solver.abs_tol(spec.resolution) * 1.001
    assert np.abs(out["u"]).max() > 1e-2                      # the flow is not trivially zero


def test_smoke_mass_grows_by_the_inflow(rotation_data):
    spec, _, ds = rotation_data
    mass = ds.density.sum(("x", "y")).values * spec.dx ** 2             # (sim, time)
    added = ds.inflow_mask.sum(("x", "y")).values * ds.inflow_rate.values * spec.dx ** 2   # per unit time
    t = ds.time.values
    expected = added[:, None] * t[None, :]
    early = t <= 20          # before the plume spreads along the far wall (see docs: advection is not conservative)
    np.testing.assert_allclose(mass[:, early][:, 1:], expected[:, early][:, 1:], rtol=0.05)
    assert mass[:, 0].max() == 0
    assert (np.diff(mass, axis=1) > 0).all()                           # grows every stored step


def test_no_nans_anywhere(rotation_data, translation_data, boundary_data, symmetric_data, sweep_data):
    for _, path, _ in (rotation_data, translation_data, boundary_data, symmetric_data, sweep_data):
        simulate.open_dataset(path, check_nans=True).close()


def test_open_wall_lets_smoke_leave(boundary_data):
    _, _, ds = boundary_data
    assert ds.open_walls.values.tolist() == ["top"] * ds.sizes["sim"]
    assert float(ds.open_mask.isel(sim=0, y=-1).min()) == 1 and float(ds.open_mask.isel(sim=0, y=0).max()) == 0
    assert float(ds.obstacle_mask.sum()) > 0
    # velocity vanishes inside the obstacle (cells fully covered)
    inside = ds.obstacle_mask.isel(sim=0).values == 1
    assert inside.any()


def test_non_converging_solve_is_an_error_naming_sim_and_step():
    spec = simulate.preset("rotation", resolution=16, n_magnitudes=1, steps=3)
    spec.solver.max_iterations = 1
    with pytest.raises(SimulationError, match=r"simulation \d+ .*step 1"):
        simulate_batch(spec, [0, 1, 2, 3])


def test_symmetric_cause_fields_are_exact_rotations():
    from simulate.symmetry import transform_fields, transform_grid
    spec = simulate.preset("symmetric", resolution=32, n_magnitudes=1, steps=1)
    c = cause_fields(spec, spec.sims)
    for k in range(4):
        assert spec.sims[k].wall == k
        np.testing.assert_array_equal(transform_grid(c["inflow_mask"][0], k), c["inflow_mask"][k])
        bx, by = transform_fields(c["buoyancy_x"][0], c["buoyancy_y"][0], k=k)
        np.testing.assert_array_equal(bx, c["buoyancy_x"][k])
        np.testing.assert_array_equal(by, c["buoyancy_y"][k])
