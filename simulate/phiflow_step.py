"""The PhiFlow smoke-plume step, batched along PhiFlow's batch dimension ``sim`` and
compiled with ``jit_compile`` on the torch backend.

Physics per solver step (``dt``):
  density  <- MacCormack(density, u, dt)
  density  <- density - dt div(w_s density)   (only where a settling velocity w_s is set:
              upwind fluxes; smoke that settles onto a wall is deposited, none comes in)
  density  <- density + inflow_rate * dt * inflow_mask
  u        <- semi-Lagrangian(u, u, dt) + dt * resample(density * b, to=u)   (b: buoyancy field)
  u, p     <- make_incompressible(u, obstacles, CG(rel_tol, abs_tol, x0=p, rank_deficiency=0))
Velocity lives on a staggered grid (walls: zero normal velocity when closed, zero
gradient when open; pressure zero on open walls); density is cell-centred with a
zero-gradient boundary. A ``periodic`` spec wraps every field around in x and y (no walls;
the pressure system is singular as in the closed box). A stirred start
(:mod:`simulate.stirring`) replaces the fluid at rest. Stored velocity is ``u.at_centers()``.

The closed box makes the pressure system singular: the solve runs in float64 with CG and
``rank_deficiency=0`` (the divergence is balanced by PhiFlow). Under ``jit_compile`` the
CG loop still stops at convergence (so a generous ``max_iterations`` costs nothing), but
PhiFlow raises nothing when it does not converge; so every step checks the L2 norm of the
divergence of the projected velocity (= the solver residual) against the tolerance and
raises :class:`SimulationError` naming simulation and step.
"""

from __future__ import annotations

import warnings

import numpy as np

from .spec import WALLS, ScenarioSpec, SimSpec
from .stirring import stirred_start

__all__ = ["SimulationError", "cause_fields", "simulate_batch", "obstacle_mask", "open_mask"]


class SimulationError(RuntimeError):
    """A simulation that produced invalid data (non-converged solve, NaN)."""


def _phi():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from phi.torch import flow
    return flow


_SIDES = {"bottom": "y-", "top": "y+", "left": "x-", "right": "x+"}     # PhiFlow's face names
_EDGE_CELLS = {"bottom": (0, slice(None)), "top": (-1, slice(None)),   # [y, x] next to a wall
               "left": (slice(None), 0), "right": (slice(None), -1)}


def cell_centres(spec: ScenarioSpec) -> np.ndarray:
    return (np.arange(spec.resolution) + 0.5) * spec.dx


def obstacle_mask(spec: ScenarioSpec, sim: SimSpec) -> np.ndarray:
    """Fraction of each cell covered by the obstacle box (exact area overlap)."""
    n, dx = spec.resolution, spec.dx
    if sim.obstacle is None:
        return np.zeros((n, n))
    x0, y0, x1, y1 = sim.obstacle
    lo = np.arange(n) * dx
    fx = np.clip(np.minimum(lo + dx, x1) - np.maximum(lo, x0), 0, None) / dx
    fy = np.clip(np.minimum(lo + dx, y1) - np.maximum(lo, y0), 0, None) / dx
    return fy[:, None] * fx[None, :]


def open_mask(spec: ScenarioSpec, sim: SimSpec) -> np.ndarray:
    """1 on the cells adjacent to an open wall."""
    m = np.zeros((spec.resolution, spec.resolution))
    for w in sim.open_walls:
        if w in _EDGE_CELLS:
            m[_EDGE_CELLS[w]] = 1
    return m


def buoyancy_field(spec: ScenarioSpec, sim: SimSpec) -> np.ndarray:
    """Buoyancy per unit density at each cell centre, shape ``(y, x, 2)``."""
    b = np.full((spec.resolution, spec.resolution, 2), sim.buoyancy)
    if sim.split_x is not None:
        b[:, cell_centres(spec) >= sim.split_x, :] = sim.buoyancy_right
    return b


def _inflow_masks(spec: ScenarioSpec, sims: list[SimSpec]) -> np.ndarray:
    """PhiFlow's soft sphere mask (``resample(Sphere, soft=True)``), shape ``(n, y, x)``."""
    flow = _phi()
    math = flow.math
    from phiml.backend import NUMPY
    with math.precision(64), NUMPY:
        n = spec.resolution
        grid = flow.CenteredGrid(0, flow.ZERO_GRADIENT, flow.Box(x=spec.size, y=spec.size), x=n, y=n)
        centres = math.tensor(np.array([[s.inflow_x, s.inflow_y] for s in sims], float),
                              flow.batch("sim"), flow.channel(vector="x,y"))
        radii = math.tensor(np.array([s.inflow_radius for s in sims], float), flow.batch("sim"))
        vals = flow.resample(flow.Sphere(center=centres, radius=radii), to=grid, soft=True).values
        if "sim" not in vals.shape:
            vals = math.expand(vals, flow.batch(sim=len(sims)))
        return np.asarray(vals.numpy("sim,y,x"), dtype=np.float64)


def cause_fields(spec: ScenarioSpec, sims: list[SimSpec]) -> dict[str, np.ndarray]:
    """The time-independent inputs of each simulation, each ``(n, y, x)`` float64:
    ``buoyancy_x``, ``buoyancy_y``, ``inflow_mask``, ``obstacle_mask``, ``open_mask``."""
    b = np.stack([buoyancy_field(spec, s) for s in sims])
    return {
        "buoyancy_x": b[..., 0],
        "buoyancy_y": b[..., 1],
        "inflow_mask": _inflow_masks(spec, sims),
        "obstacle_mask": np.stack([obstacle_mask(spec, s) for s in sims]),
        "open_mask": np.stack([open_mask(spec, s) for s in sims]),
    }


def _initial_density(spec: ScenarioSpec, sim_index: int) -> np.ndarray:
    n = spec.resolution
    if spec.init_noise <= 0:
        return np.zeros((n, n))
    return spec.init_noise * np.random.default_rng([spec.seed, sim_index]).random((n, n))


def settle(smoke, drift, dt: float, dx: float, periodic: bool = False):
    """One explicit upwind step of ``d rho / dt = -div(w_s rho)``: the smoke moves by its
    settling velocity ``drift`` (batch vector ``w_s``, box units per time unit) relative
    to the fluid. In a closed box smoke that settles onto a wall is deposited there (it
    leaves the box) and none enters through the opposite wall; in a ``periodic`` box it
    comes back in through the opposite side. Stable for ``|w_s| dt / dx <= 1`` per axis."""
    math = _phi().math
    v = smoke.values
    for d in ("x", "y"):
        n = v.shape.get_size(d)
        c = drift.vector[d] * (dt / dx)
        last, first = {d: slice(n - 1, n)}, {d: slice(0, 1)}
        out = math.maximum(c, 0) * v                    # to the +d neighbour (or out)
        v = v - out + (math.concat([out[last], out[{d: slice(0, n - 1)}]], d) if periodic
                       else math.pad(out[{d: slice(0, n - 1)}], {d: (1, 0)}, 0))
        out = math.maximum(-c, 0) * v                   # to the -d neighbour (or out)
        v = v - out + (math.concat([out[{d: slice(1, n)}], out[first]], d) if periodic
                       else math.pad(out[{d: slice(1, n)}], {d: (0, 1)}, 0))
    return smoke.with_values(v)


def _step_function(dt, obstacle, solver, res, jit, settling: bool = False, dx: float = 1.0,
                   periodic: bool = False):
    """The (compiled) step, made anew for every part. PhiFlow's jit trace depends on the
    values of the call that traces it (differences ~1e-5), so a trace shared between parts
    made a part depend on which part its process simulated first, and a resumed run
    differed from an uninterrupted one. A fresh trace per part costs one trace (~4 s at
    32x32 on a CPU core) and makes every part a function of its own simulations only."""
    flow = _phi()
    math = flow.math
    obstacles = (flow.Obstacle(flow.Box(x=(obstacle[0], obstacle[2]), y=(obstacle[1], obstacle[3]))),) \
        if obstacle is not None else ()

    def step(smoke, vel, pressure, source, buoy, drift=None):
        smoke = flow.advect.mac_cormack(smoke, vel, dt)
        if settling:  # the tracer also moves relative to the fluid
            smoke = settle(smoke, drift, dt, dx, periodic)
        smoke = smoke + source
        force = flow.resample(smoke * buoy, to=vel)
        vel = flow.advect.semi_lagrangian(vel, vel, dt) + force * dt
        rhs = flow.field.divergence(vel).values
        solve = flow.Solve(solver.method, solver.rel_tol, solver.abs_tol(res), x0=pressure,
                           max_iterations=solver.iterations(res), rank_deficiency=0)
        vel, pressure = flow.fluid.make_incompressible(vel, obstacles, solve)
        div = flow.field.divergence(vel).values
        rhs_norm = math.sqrt(math.sum(rhs ** 2, "x,y"))
        res_norm = math.sqrt(math.sum(div ** 2, "x,y"))
        return smoke, vel, pressure, res_norm, rhs_norm

    return flow.jit_compile(step) if jit else step


def _compute_device(backend, device: str):
    """PhiFlow's device for a device name of :mod:`surrogate.devices` (``auto``, ``cpu``,
    ``cuda``, ``cuda:N``); raises its ``DeviceError`` (a ValueError) for others."""
    from surrogate.devices import DeviceError, resolve_device
    dev = resolve_device(device)
    if dev.type == "cpu":
        return "CPU"
    gpus = backend.list_devices("GPU")
    if dev.index is None:   # torch's current CUDA device
        import torch
        dev = torch.device("cuda", torch.cuda.current_device())
    index = dev.index
    match = [d for d in gpus if d.ref == f"cuda:{index}"]
    if not match:
        raise DeviceError(f"{device} requested but PhiFlow's torch backend lists no such "
                          f"GPU (it lists {[d.ref for d in gpus]})")
    return match[0]


def _check_converged(res_norm, rhs_norm, max_res: np.ndarray, spec: ScenarioSpec,
                     indices: list[int], step: int) -> np.ndarray:
    """Refuse a pressure solve whose residual ``||div u||_2`` exceeds ``check_factor``
    times its tolerance in any simulation of the batch; the running maximum of
    residual / tolerance ``(n,)``."""
    sv, res, nb = spec.solver, spec.resolution, len(indices)
    r = np.asarray(res_norm.numpy("sim"), float).reshape(nb)
    tol = np.maximum(sv.rel_tol * np.asarray(rhs_norm.numpy("sim"), float).reshape(nb),
                     sv.abs_tol(res))
    bad = ~np.isfinite(r) | (r > sv.check_factor * tol)
    if bad.any():
        b = int(np.argmax(bad))
        raise SimulationError(
            f"simulation {indices[b]} (scenario {spec.name!r}): pressure solve did not converge "
            f"at step {step}: ||div u||_2 = {r[b]:.3g} > {sv.check_factor:g} x tolerance "
            f"{tol[b]:.3g} (try a larger solver.max_iterations, now {sv.iterations(res)}, or "
            "precision 64)")
    return np.maximum(max_res, np.where(np.isfinite(r), r / tol, np.inf))


def _check_finite_frame(out: dict, f: int, spec: ScenarioSpec, indices: list[int],
                        step: int) -> None:
    """Refuse a stored frame ``f`` of ``out`` (``(n, T, y, x)`` per field) holding NaN/Inf."""
    for k in ("u", "v", "density"):
        finite = np.isfinite(out[k][:, f]).all(axis=(1, 2))
        if not finite.all():
            b = int(np.argmin(finite))
            raise SimulationError(f"simulation {indices[b]} (scenario {spec.name!r}): "
                                  f"non-finite {k} at step {step}")


def _initial_state(flow, spec: ScenarioSpec, indices: list[int], causes: dict,
                   open_walls) -> tuple:
    """The PhiFlow fields a batch starts from: smoke, velocity (zero), pressure (zero),
    the inflow source, the buoyancy field and the settling drift (None without)."""
    math, res, nb = flow.math, spec.resolution, len(indices)
    sims = [spec.sims[i] for i in indices]
    domain = flow.Box(x=spec.size, y=spec.size)
    as_ext = flow.extrapolation.as_extrapolation
    v_ext = as_ext({_SIDES[w]: flow.ZERO_GRADIENT if w in open_walls else 0 for w in WALLS})
    p_ext = as_ext({_SIDES[w]: 0 if w in open_walls else flow.ZERO_GRADIENT for w in WALLS})

    def grid(values_np, ext):
        # numpy (sim, y, x[, vector]) -> PhiFlow grid with spatial order x, y
        t = math.tensor(np.swapaxes(values_np, 1, 2), flow.batch("sim"), flow.spatial("x,y"),
                        *([flow.channel(vector="x,y")] if values_np.ndim == 4 else []))
        return flow.CenteredGrid(t, ext, domain, x=res, y=res)

    s_ext = flow.ZERO_GRADIENT
    if spec.periodic:
        s_ext = v_ext = p_ext = flow.PERIODIC
    density = np.stack([_initial_density(spec, i) for i in indices])
    if any(s.initial_pattern >= 0 for s in sims):       # a stirred start
        start = [stirred_start(res, spec.seed, s.initial_pattern, s.initial_speed, s.initial_turns)
                 if s.initial_pattern >= 0 else (np.zeros((res, res)),) * 3 for s in sims]
        density = density + np.stack([d for _, _, d in start])
        centred = grid(np.stack([np.stack([u, v], -1) for u, v, _ in start]), v_ext)
        vel = flow.StaggeredGrid(centred, v_ext, domain, x=res, y=res)
    else:
        vel = flow.StaggeredGrid(0, v_ext, domain, x=res, y=res) * math.zeros(flow.batch(sim=nb))
    smoke = grid(density, s_ext)
    pressure = grid(np.zeros((nb, res, res)), p_ext)
    rates = np.array([s.inflow_rate for s in sims])[:, None, None]
    source = grid(causes["inflow_mask"] * rates * spec.dt, s_ext)
    buoy = grid(np.stack([causes["buoyancy_x"], causes["buoyancy_y"]], -1), s_ext)
    drift = (math.tensor(np.array([s.settling or (0.0, 0.0) for s in sims], float),
                         flow.batch("sim"), flow.channel(vector="x,y"))
             if any(s.settling is not None for s in sims) else None)
    return smoke, vel, pressure, source, buoy, drift


def simulate_batch(spec: ScenarioSpec, indices: list[int], *, causes: dict | None = None,
                   jit: bool = True, device: str = "auto", on_step=None,
                   return_state: bool = False) -> dict:
    """Run the simulations ``spec.sims[i] for i in indices`` together (they must share
    open walls, obstacle and warm-up). Returns ``{"u", "v", "density"}`` arrays ``(n, T, y, x)``
    float32 (``T = spec.n_frames``; frame 0 is the initial state) and ``"stats"``.
    ``on_step()`` is called after every solver step, the ``warmup_steps`` the batch shares
    before frame 0 included."""
    flow = _phi()
    math = flow.math
    sims = [spec.sims[i] for i in indices]
    if len({s.static_key for s in sims}) != 1:
        raise ValueError("simulate_batch: all simulations of a batch must share open_walls, obstacle and warmup_steps")
    if causes is None:
        causes = cause_fields(spec, sims)
    nb, res, dt, sv = len(sims), spec.resolution, spec.dt, spec.solver
    open_walls, obstacle, warmup = sims[0].static_key
    flow.TORCH.set_default_device(_compute_device(flow.TORCH, device))

    out = {k: np.empty((nb, spec.n_frames, res, res), np.float32) for k in ("u", "v", "density")}
    max_res = np.zeros(nb)
    with flow.TORCH, math.precision(sv.precision), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        smoke, vel, pressure, source, buoy, drift = _initial_state(flow, spec, indices,
                                                                  causes, open_walls)
        settling = drift is not None
        fn = _step_function(dt, obstacle, sv, res, jit, settling, spec.dx, spec.periodic)

        def store(f):
            out["density"][:, f] = smoke.values.numpy("sim,y,x")
            c = vel.at_centers().values.numpy("sim,y,x,vector")
            out["u"][:, f], out["v"][:, f] = c[..., 0], c[..., 1]

        if warmup == 0:
            store(0)
        for s in range(1, warmup + spec.steps + 1):
            smoke, vel, pressure, res_norm, rhs_norm = fn(smoke, vel, pressure, source, buoy,
                                                          *([drift] if settling else []))
            max_res = _check_converged(res_norm, rhs_norm, max_res, spec, indices, s)
            if s >= warmup and (s - warmup) % spec.save_every == 0:  # frame 0 after a warm-up
                f = (s - warmup) // spec.save_every
                store(f)
                _check_finite_frame(out, f, spec, indices, s)
            if on_step is not None:
                on_step()
    out["stats"] = {"max_residual_over_tolerance": float(max_res.max())}
    if return_state:
        out["state"] = {"density": smoke, "velocity": vel, "pressure": pressure}
    return out
