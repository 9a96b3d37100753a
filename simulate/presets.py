"""Named scenario presets: each function builds a :class:`ScenarioSpec` of one family
(``rotation``, ``settling``, ``drift``, ``symmetric``, ``breaking_sweep``,
``translation``, ``boundary``); :func:`preset` builds one by name with checked overrides."""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections import Counter
from typing import Any, Callable

from .spec import (WALLS, ScenarioSpec, SimSpec, SolverSpec, SpecError, _is_number,
                   _type_problem, check_positive, rotate_point)
from .symmetry import transform_vector

__all__ = ["preset", "available_scenarios", "preset_parameters"]


# ----------------------------------------------------------------------------- helpers

def _mark_heldout(sims: list[SimSpec], frac: float) -> None:
    """Mark an evenly spread ``round(frac * n)`` of ``sims`` as held out (none when
    ``n < 4``), never every simulation of one wall."""
    n = len(sims)
    m = int(round(frac * n)) if n >= 4 else 0
    first = sorted({min(n - 1, int((i + 0.5) * n / m)) for i in range(m)})
    order = first + [i for i in sorted(range(n), key=lambda i: (i * 7919) % n) if i not in first]
    per_wall, held = Counter(s.wall for s in sims), Counter()
    for i in order:
        if held.total() >= m:
            break
        w = sims[i].wall
        if w >= 0 and held[w] + 1 >= per_wall[w] and len(per_wall) > 1:
            continue
        sims[i].heldout = True
        held[w] += 1


def _mark_heldout_magnitudes(sims: list[SimSpec], frac: float, n_magnitudes: int) -> None:
    """Hold out every wall of an evenly spread ``round(frac * n_magnitudes)`` (at least
    one) of the magnitude indices, so that no held-out run has its magnitude in training
    (the paper's unseen forces; with ``runs``, a held-out run of a family with one
    magnitude for all walls has rotated partners in training)."""
    m = max(1, int(round(frac * n_magnitudes)))
    if m >= n_magnitudes:
        raise SpecError(f"held_out 'magnitudes' needs more magnitudes than the {m} held out "
                        f"(n_magnitudes {n_magnitudes}, heldout_fraction {frac:g})")
    chosen = {min(n_magnitudes - 1, int((i + 0.5) * n_magnitudes / m)) for i in range(m)}
    for s in sims:
        s.heldout = s.magnitude_index in chosen


HELD_OUT = ("runs", "magnitudes")


def _wall_sims(size, radius, distance, magnitude, wall, rate, **labels) -> SimSpec:
    """The bottom-wall setup (inflow ``distance`` above the bottom, buoyancy up) rotated
    to ``wall``."""
    x, y = rotate_point(size / 2, distance, wall, size)
    bx, by = transform_vector(0.0, magnitude, wall)
    return SimSpec(inflow_x=x, inflow_y=y, inflow_radius=radius, inflow_rate=rate,
                   buoyancy=(bx + 0.0, by + 0.0),    # no negative zeros (they change the JSON)
                   wall=wall, **labels)


def _common(fn, p: dict) -> dict:
    """The :class:`ScenarioSpec` arguments of preset ``fn`` called with ``p`` (its
    arguments, recorded less the solver as ``preset_params``)."""
    check_positive("resolution", p["resolution"])
    solver = p.pop("solver")
    return dict(name=fn.__name__, description=fn.__doc__.split("\n")[0], preset_params=p,
                resolution=p["resolution"], steps=p["steps"], dt=p["dt"],
                save_every=p["save_every"], seed=p["seed"],
                solver=SolverSpec(**solver) if isinstance(solver, dict) else (solver or SolverSpec()))


def _geom(resolution, inflow_radius, wall_distance):
    default = 5 * resolution / 64
    return (float(resolution), float(default if inflow_radius is None else inflow_radius),
            float(default if wall_distance is None else wall_distance))


def _finish(common: dict, sims: list[SimSpec], late: list[bool]) -> ScenarioSpec:
    """The preset's spec, its training runs flagged in ``late`` recorded after ``late_start``
    solver steps of warm-up (the later flow regime that test-future asks about); held-out
    runs start at frame 0, the early times test-domain means. ``late_start = 0`` leaves
    the spec, and its hash, as before the option existed."""
    p = common["preset_params"]
    late_start = p["late_start"]
    if not isinstance(late_start, int) or isinstance(late_start, bool) or late_start < 0:
        raise SpecError(f"late_start must be a non-negative integer, got {late_start!r}")
    if not late_start:
        p.pop("late_start")
    for s, flag in zip(sims, late):
        if flag and not s.heldout:
            s.warmup_steps = late_start
    return ScenarioSpec(sims=sims, **common)


def _rotation_family(fn, p: dict, magnitude_fn, levels=(float("nan"),)) -> ScenarioSpec:
    """Preset ``fn`` from its arguments ``p``: per level, ``n_magnitudes`` x 4 walls with
    buoyancy ``magnitude_fn(j, k, level)`` away from wall ``k``."""
    held_out = p.get("held_out", "runs")
    if held_out not in HELD_OUT:
        raise SpecError(f"scenario {fn.__name__!r}: held_out must be one of {HELD_OUT}, "
                        f"got {held_out!r}")
    if held_out == "runs":
        p.pop("held_out", None)             # the default: the spec's hash as before
    common = _common(fn, p)
    check_positive("n_magnitudes", p["n_magnitudes"])
    size, r, d = _geom(p["resolution"], p["inflow_radius"], p["wall_distance"])
    sims = []
    for level in levels:
        block = [_wall_sims(size, r, d, magnitude_fn(j, k, level), k, p["inflow_rate"],
                            magnitude_index=j, level=float(level))
                 for j in range(p["n_magnitudes"]) for k in range(4)]
        if held_out == "magnitudes":
            _mark_heldout_magnitudes(block, p["heldout_fraction"], p["n_magnitudes"])
        else:
            _mark_heldout(block, p["heldout_fraction"])
        sims += block
    # late: odd magnitude index, all four walls of a magnitude together, so no early run
    # is a rotated copy of a late one (exactly so in `symmetric`)
    return _finish(common, sims, [s.magnitude_index % 2 == 1 for s in sims])


# ----------------------------------------------------------------------------- presets

def rotation(resolution: int = 64, n_magnitudes: int = 9, base_buoyancy: float = 0.01,
             steps: int = 310, dt: float = 1.0, save_every: int = 1, seed: int = 0,
             inflow_radius: float | None = None, wall_distance: float | None = None,
             inflow_rate: float = 0.2, heldout_fraction: float = 0.28, late_start: int = 0,
             bands: bool = False, solver=None) -> ScenarioSpec:
    """Paper's rotation set: inflow near the middle of each wall, buoyancy away from it.
    Run ``n = 4 j + k`` (magnitude index ``j``, wall ``k``) has magnitude
    ``base_buoyancy * (n + 1)``, so magnitudes differ between walls and runs (the paper's
    k = 1..36 scaling for ``n_magnitudes=9``): interleaved, so the wall says nothing about
    the magnitude. ``bands``: wall ``k`` gets its own band instead, magnitude
    ``base_buoyancy * (k * n_magnitudes + j + 1)``, so the orientation predicts the
    magnitude. Held out: an evenly spread ~28% of the runs (10 of 36; every run has its
    own, so an unseen, magnitude). ``late_start > 0``: the training runs of odd ``j`` are
    recorded after that many solver steps of warm-up."""
    params = dict(locals())
    if not isinstance(bands, bool):
        raise SpecError(f"scenario 'rotation': parameter bands must be true or false, got {bands!r}")
    if not bands:
        params.pop("bands")                 # interleaved: the spec's hash as before
    n = n_magnitudes
    return _rotation_family(rotation, params,
                            (lambda j, k, level: base_buoyancy * (k * n + j + 1)) if bands else
                            (lambda j, k, level: base_buoyancy * (4 * j + k + 1)))


def settling(resolution: int = 64, n_magnitudes: int = 9, base_buoyancy: float = 0.01,
             settling_speed: float = 0.3, steps: int = 310, dt: float = 1.0,
             save_every: int = 1, seed: int = 0, inflow_radius: float | None = None,
             wall_distance: float | None = None, inflow_rate: float = 0.2,
             heldout_fraction: float = 0.28, late_start: int = 0,
             held_out: str = "runs", solver=None) -> ScenarioSpec:
    """Hidden breaking: ``symmetric``'s plumes (one magnitude ``base_buoyancy * (4 j + 1)``
    for all four walls, buoyancy away from the wall) whose smoke settles at
    ``settling_speed`` (box units per time unit) straight down, in every run: the density
    moves with ``u + (0, -settling_speed)`` (conservative upwind fluxes; smoke that
    reaches the floor is deposited and leaves the box). The fixed direction breaks D4 down to the
    mirror ``x -> -x``; the velocity does not settle, so six invariant statistics of a frame
    miss the direction, though a strict network reads it from one frame once the plume has
    grown (``evaluate.observability(..., invariant=True)``).
    ``settling_speed = 0`` is the symmetric twin (the runs of ``symmetric``). Held out
    (``held_out``): an evenly spread ~28% of the runs (``runs``; each has runs of its
    magnitude on other walls in training), or every wall of ~28% of the magnitudes
    (``magnitudes``: unseen forces, as in the paper's test-domain)."""
    params = dict(locals())
    if not _is_number(settling_speed) or not math.isfinite(settling_speed) or settling_speed < 0:
        raise SpecError(f"settling_speed must be a non-negative number, got {settling_speed!r}")
    spec = _rotation_family(settling, params, lambda j, k, level: base_buoyancy * (4 * j + 1))
    if settling_speed:
        for s in spec.sims:
            s.settling = (0.0, -float(settling_speed))
    return spec


def drift(resolution: int = 64, n_patterns: int = 8, settling_speed: float = 0.6,
          initial_speed: float = 0.5, steps: int = 310, dt: float = 1.0, save_every: int = 1,
          seed: int = 0, heldout_fraction: float = 0.28, late_start: int = 0,
          solver=None) -> ScenarioSpec:
    """Breaking no frame shows: a tracer stirred in a periodic box (no walls, no inflow, no
    buoyancy) that settles at ``settling_speed`` straight down relative to the fluid. Run
    ``4 j + k`` starts from random pattern ``j`` (:mod:`simulate.stirring`: decaying
    divergence-free stirring of rms speed ``initial_speed``, density blobs unrelated to it)
    turned by ``k`` quarter turns, so the four turns of a pattern start as exact
    rotations of each other and every rotated start is a start of the data, with another
    future. The velocity obeys D4 exactly; the density's drift keeps only the mirror
    ``x -> -x``. ``settling_speed = 0`` is the symmetric twin. Held out: every turn of an
    evenly spread ~28% of the patterns (unseen patterns); ``late_start > 0``: the training
    runs of odd ``j`` are recorded after that many solver steps."""
    params = dict(locals())
    if not _is_number(settling_speed) or not math.isfinite(settling_speed) or settling_speed < 0:
        raise SpecError(f"settling_speed must be a non-negative number, got {settling_speed!r}")
    if not _is_number(initial_speed) or not math.isfinite(initial_speed) or initial_speed <= 0:
        raise SpecError(f"initial_speed must be a positive number, got {initial_speed!r}")
    common = {**_common(drift, params), "periodic": True}
    check_positive("n_patterns", n_patterns)
    if n_patterns < 2:
        raise SpecError(f"scenario 'drift': n_patterns must be at least 2 (whole patterns "
                        f"are held out, and one must be left to train on), got {n_patterns}")
    if max(1, int(round(heldout_fraction * n_patterns))) >= n_patterns:
        raise SpecError(f"scenario 'drift': heldout_fraction {heldout_fraction:g} holds out "
                        f"every one of the {n_patterns} patterns; leave one to train on")
    size = float(resolution)
    sims = [SimSpec(inflow_x=size / 2, inflow_y=size / 2, inflow_rate=0.0, buoyancy=(0.0, 0.0),
                    settling=(0.0, -float(settling_speed)) if settling_speed else None,
                    initial_pattern=j, initial_speed=float(initial_speed), initial_turns=k,
                    wall=k, magnitude_index=j)
            for j in range(n_patterns) for k in range(4)]
    _mark_heldout_magnitudes(sims, heldout_fraction, n_patterns)
    return _finish(common, sims, [s.magnitude_index % 2 == 1 for s in sims])


def symmetric(resolution: int = 64, n_magnitudes: int = 9, base_buoyancy: float = 0.01,
              steps: int = 310, dt: float = 1.0, save_every: int = 1, seed: int = 0,
              inflow_radius: float | None = None, wall_distance: float | None = None,
              inflow_rate: float = 0.2, heldout_fraction: float = 0.28, late_start: int = 0,
              held_out: str = "runs", solver=None) -> ScenarioSpec:
    """Control: the same magnitude ``base_buoyancy * (4 j + 1)`` for all four walls, so the
    run from wall ``k`` is the wall-0 run rotated by ``k`` quarter turns (to solver
    tolerance). Inflow positions are exact rotations about the box centre. Held out
    (``held_out``): an evenly spread ~28% of the runs (``runs``: each a rotated copy of
    training runs), or every wall of ~28% of the magnitudes (``magnitudes``)."""
    return _rotation_family(symmetric, dict(locals()),
                            lambda j, k, level: base_buoyancy * (4 * j + 1))


def breaking_sweep(resolution: int = 64, levels=(0.0, 0.25, 0.5, 0.75, 1.0), n_magnitudes: int = 2,
                   base_buoyancy: float = 0.01, asymmetry: float = 3.0,
                   steps: int = 310, dt: float = 1.0, save_every: int = 1, seed: int = 0,
                   inflow_radius: float | None = None, wall_distance: float | None = None,
                   inflow_rate: float = 0.2, heldout_fraction: float = 0.28, late_start: int = 0,
                   solver=None) -> ScenarioSpec:
    """Family of rotation sets indexed by ``level`` in [0, 1]: wall ``k`` has magnitude
    ``base_buoyancy * (4 j + 1) * (1 + asymmetry * level * k)``; level 0 is ``symmetric``,
    level 1 with ``asymmetry=3`` has wall ratios 1:4:7:10 (the paper's Figure-4 scheme).
    Held out: an evenly spread ~28% of the runs of each level."""
    params = dict(locals())
    levels = [float(v) for v in (levels if isinstance(levels, (list, tuple)) else [levels])]
    if not levels or any(not (0.0 <= v <= 1.0) for v in levels):
        raise SpecError(f"levels must be a non-empty list of numbers in [0, 1], got {levels}")
    if asymmetry < 0:
        raise SpecError(f"asymmetry must be non-negative, got {asymmetry}")
    params["levels"] = levels
    return _rotation_family(
        breaking_sweep, params,
        lambda j, k, level: base_buoyancy * (4 * j + 1) * (1 + asymmetry * level * k), levels)


def translation(resolution: int = 64, nx: int = 7, ny: int = 5, buoyancy_left: float = 0.1,
                buoyancy_right: float = 0.2, steps: int = 310, dt: float = 0.5, save_every: int = 1,
                seed: int = 0, inflow_radius: float | None = None, inflow_rate: float = 0.2,
                heldout_fraction: float = 0.28, late_start: int = 0, solver=None) -> ScenarioSpec:
    """Paper's translation set: upward buoyancy ``buoyancy_left`` in the left half and
    ``buoyancy_right`` in the right half; inflows on an ``nx x ny`` grid (x at
    ``size*(i+1)/(nx+1)``, y at ``size*5(j+1)/64``: 8..56 x 5..25 at 64x64).
    Held out: an evenly spread ~28% of the inflow positions. ``late_start > 0``: the
    training runs of odd inflow rows (both halves) are recorded after that many solver
    steps of warm-up."""
    params = dict(locals())
    check_positive("nx", nx)
    check_positive("ny", ny)
    common = _common(translation, params)
    size, r, _ = _geom(resolution, inflow_radius, None)
    sims = [SimSpec(inflow_x=size * (i + 1) / (nx + 1), inflow_y=size * 5 * (j + 1) / 64,
                    inflow_radius=r, inflow_rate=inflow_rate, buoyancy=(0.0, buoyancy_left),
                    split_x=size / 2, buoyancy_right=(0.0, buoyancy_right))
            for j in range(ny) for i in range(nx)]
    _mark_heldout(sims, heldout_fraction)
    return _finish(common, sims, [(k // nx) % 2 == 1 for k in range(len(sims))])


def boundary(resolution: int = 64, n_inflows: int = 4, n_magnitudes: int = 3, base_buoyancy: float = 0.05,
             open_walls=("top",), obstacle: bool = True, steps: int = 310, dt: float = 1.0,
             save_every: int = 1, seed: int = 0, inflow_radius: float | None = None,
             wall_distance: float | None = None, inflow_rate: float = 0.2,
             heldout_fraction: float = 0.28, late_start: int = 0, late_twins: bool = False,
             solver=None) -> ScenarioSpec:
    """Symmetry broken by boundary conditions: inflows along the bottom wall (x spread over
    the middle 40% of the box), buoyancy up with magnitude ``base_buoyancy * (j + 1)``,
    the walls in ``open_walls`` are open (outflow: zero-gradient velocity, zero pressure),
    and, if ``obstacle``, an off-centre box obstacle (x 55-75%, y 45-55% of the box).
    Held out: an evenly spread ~28% of the runs ((inflow, magnitude) pairs).
    ``late_start > 0``: the training runs of odd magnitude index are recorded after that
    many solver steps of warm-up; with ``late_twins`` they keep their record from rest
    and a twin recorded after the warm-up is added (appended after the other runs)."""
    params = dict(locals())
    twinned = bool(late_twins and late_start)
    if not twinned:
        params.pop("late_twins")            # nothing twinned: the spec's hash as before
    check_positive("n_inflows", n_inflows)
    check_positive("n_magnitudes", n_magnitudes)
    if isinstance(open_walls, str):
        open_walls = tuple(w for w in open_walls.split(",") if w)
    open_walls = tuple(open_walls)
    if not open_walls:
        raise SpecError("boundary: open_walls must name at least one wall")
    params["open_walls"] = list(open_walls)
    common = _common(boundary, params)
    size, r, d = _geom(resolution, inflow_radius, wall_distance)
    # obstacle faces on cell faces (PhiFlow's obstacle masks are exact there)
    obs = tuple(float(round(f * resolution)) * size / resolution for f in (0.55, 0.45, 0.75, 0.55)) \
        if obstacle else None
    xs = [size / 2] if n_inflows == 1 else [size * (0.3 + 0.4 * i / (n_inflows - 1)) for i in range(n_inflows)]
    sims = [SimSpec(inflow_x=x, inflow_y=d, inflow_radius=r, inflow_rate=inflow_rate,
                    buoyancy=(0.0, base_buoyancy * (j + 1)), open_walls=open_walls,
                    obstacle=obs, wall=0, magnitude_index=j)
            for j in range(n_magnitudes) for x in xs]
    _mark_heldout(sims, heldout_fraction)
    late = [s.magnitude_index % 2 == 1 for s in sims]
    if twinned:
        twins = [dataclasses.replace(s) for s, odd in zip(sims, late) if odd and not s.heldout]
        sims, late = sims + twins, [False] * len(sims) + [True] * len(twins)
    return _finish(common, sims, late)


_PRESETS: dict[str, Callable[..., ScenarioSpec]] = {
    "rotation": rotation, "translation": translation, "symmetric": symmetric,
    "breaking_sweep": breaking_sweep, "boundary": boundary, "settling": settling,
    "drift": drift,
}


def available_scenarios() -> list[str]:
    return list(_PRESETS)


def preset_parameters(name: str) -> dict[str, Any]:
    """Parameter names and defaults of a preset."""
    if name not in _PRESETS:
        raise SpecError(f"unknown scenario {name!r} (available: {', '.join(_PRESETS)})")
    return {k: p.default for k, p in inspect.signature(_PRESETS[name]).parameters.items()}


def _param_problem(default, v) -> str | None:
    """What is wrong with preset parameter value ``v``, judged by the type of its
    default (None defaults: a number or unset; the solver table is checked later)."""
    if isinstance(default, (bool, int)):
        return _type_problem(type(default).__name__, v)
    if isinstance(default, float) or default is None:
        return None if isinstance(v, dict) else _type_problem("float|None", v)
    if isinstance(default, (tuple, list)):
        return None if isinstance(v, (tuple, list, str)) else "a list"
    return None


def preset(name: str, **overrides) -> ScenarioSpec:
    """Build the named preset, e.g. ``preset("rotation", resolution=32, n_magnitudes=2)``."""
    allowed = preset_parameters(name)
    if bad := set(overrides) - set(allowed):
        raise SpecError(f"scenario {name!r} has no parameter(s) {', '.join(sorted(bad))} "
                        f"(parameters: {', '.join(allowed)})")
    for k, v in overrides.items():
        if problem := _param_problem(allowed[k], v):
            raise SpecError(f"scenario {name!r}: parameter {k} must be {problem}, got {v!r}")
    try:
        spec = _PRESETS[name](**overrides)
    except TypeError as e:
        raise SpecError(f"scenario {name!r}: {e}") from None
    return spec.validate()
