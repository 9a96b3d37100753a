"""Scenario specifications: one dataclass spec (Python or TOML) and named presets.

A scenario is a :class:`ScenarioSpec` holding global settings (grid, time stepping,
solver) and an explicit list of :class:`SimSpec`, one per simulation.  Everything that
breaks (or keeps) the symmetry is data in these specs -- buoyancy vectors, inflow
positions, open walls, obstacles -- never code, so a dataset's attrs fully describe it.

Units: lengths in the box's units (``box_size`` defaults to ``resolution``, i.e. one
unit per cell, as in the paper), time in solver time units, buoyancy in force per unit
density.  Walls are numbered by counter-clockwise quarter turns from the bottom wall
(the convention of :mod:`simulate.symmetry`): ``0 bottom, 1 right, 2 top, 3 left``; the
setup at wall ``k`` is the bottom-wall setup rotated by ``k * 90`` degrees
counter-clockwise about the box centre.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .symmetry import transform_vector

__all__ = ["SpecError", "SimSpec", "SolverSpec", "ScenarioSpec", "WALLS", "preset",
           "available_scenarios", "preset_parameters", "load_spec", "spec_to_toml",
           "rotate_point"]

WALLS = ("bottom", "right", "top", "left")
# PhiFlow 3.4 builds the pressure matrix with 32-bit flat indices over (cells x cells):
# a square grid needs resolution**4 < 2**31, i.e. at most 215 cells per side
MAX_RESOLUTION = 215


class SpecError(ValueError):
    """A scenario spec (or preset parameter) that cannot be simulated."""


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _type_problem(ann: str, v) -> str | None:
    """What is wrong with value ``v`` for a field annotated ``ann`` (None: nothing)."""
    ann = ann.replace(" ", "")
    if ann.endswith("|None"):
        if v is None:
            return None
        ann = ann.removesuffix("|None")
    seq, n = isinstance(v, (list, tuple)), ann.count("float")
    fits = {  # annotation: (whether v fits it, what v must be)
        "float": (_is_number(v), "a number"),
        "int": (isinstance(v, int) and not isinstance(v, bool), "an integer"),
        "bool": (isinstance(v, bool), "true or false"),
        "str": (isinstance(v, str), "a string"),
        f"tuple[{','.join(['float'] * n)}]": (seq and len(v) == n and all(map(_is_number, v)),
                                              f"a list of {n} numbers"),
        "tuple[str,...]": (isinstance(v, str) or seq and all(isinstance(x, str) for x in v),
                           "a list of wall names"),
    }
    ok, what = fits.get(ann, (True, None))
    return None if ok else what


def _unknown_keys(d: dict, cls) -> str:
    """The keys of ``d`` that are no field of dataclass ``cls``, sorted and comma-separated."""
    return ", ".join(sorted(set(d) - {f.name for f in dataclasses.fields(cls)}))


def _check_field_types(obj, where: str) -> None:
    """Raise a one-line :class:`SpecError` for the first field whose value has the wrong
    type (``buoyancy = "up"``, ``seed = "x"``), before anything converts or uses it."""
    for f in dataclasses.fields(obj):
        if problem := _type_problem(str(f.type), getattr(obj, f.name)):
            raise SpecError(f"{where}{f.name} must be {problem}, got "
                            f"{getattr(obj, f.name)!r}")


@dataclass
class SimSpec:
    """One simulation. ``buoyancy`` applies in the whole box, or where ``x < split_x``
    when ``split_x`` is set (``buoyancy_right`` applies where ``x >= split_x``)."""
    inflow_x: float
    inflow_y: float
    inflow_radius: float = 5.0
    inflow_rate: float = 0.2            # density added per unit time inside the sphere
    buoyancy: tuple[float, float] = (0.0, 0.1)
    split_x: float | None = None
    buoyancy_right: tuple[float, float] | None = None
    open_walls: tuple[str, ...] = ()    # subset of WALLS; the others are closed (no-slip normal)
    obstacle: tuple[float, float, float, float] | None = None   # box x0, y0, x1, y1
    warmup_steps: int = 0               # solver steps run before frame 0 (not stored)
    settling: tuple[float, float] | None = None   # the tracer's drift relative to the fluid
    # labels (metadata only, they do not change the physics)
    wall: int = -1                      # quarter-turn index of the inflow wall, -1: none
    magnitude_index: int = -1           # index of the buoyancy magnitude within the preset
    level: float = float("nan")         # symmetry-breaking level (breaking_sweep)
    heldout: bool = False               # the preset's suggested test-domain split

    def __post_init__(self):
        _check_field_types(self, "")
        for name in ("buoyancy", "buoyancy_right", "obstacle", "settling"):
            if getattr(self, name) is not None:
                setattr(self, name, tuple(float(b) for b in getattr(self, name)))
        if isinstance(self.open_walls, str):
            self.open_walls = tuple(w for w in self.open_walls.replace(" ", "").split(",") if w)
        self.open_walls = tuple(sorted(set(self.open_walls),
                                       key=lambda w: WALLS.index(w) if w in WALLS else 99))
        if self.warmup_steps < 0:
            raise SpecError(f"warmup_steps must be >= 0, got {self.warmup_steps}")

    @property
    def static_key(self):
        """Settings that must be shared by all simulations of one batch."""
        return (self.open_walls, self.obstacle, self.warmup_steps)


@dataclass
class SolverSpec:
    """Pressure solve. The closed box is singular: CG in float64 with
    ``rank_deficiency=0`` (divergence balanced by PhiFlow) is the reliable setting."""
    method: str = "CG"
    rel_tol: float = 1e-5
    abs_tol_per_cell: float = 1e-5      # abs_tol = abs_tol_per_cell * resolution (L2 norm)
    max_iterations: int | None = None   # None: max(1000, 16 * resolution); CG stops at convergence
    precision: int = 64
    check_factor: float = 10.0          # a step fails if ||div u||_2 > factor * tolerance

    def __post_init__(self):
        _check_field_types(self, "solver: ")

    def abs_tol(self, resolution: int) -> float:
        return self.abs_tol_per_cell * resolution

    def iterations(self, resolution: int) -> int:
        return int(self.max_iterations or max(1000, 16 * resolution))


@dataclass
class ScenarioSpec:
    name: str
    sims: list[SimSpec]
    resolution: int = 64
    box_size: float | None = None       # None: = resolution (one length unit per cell)
    steps: int = 310                    # solver steps
    dt: float = 1.0                     # solver time step
    save_every: int = 1                 # store every k-th solver step
    seed: int = 0                       # seeds the optional initial noise
    init_noise: float = 0.0             # amplitude of uniform noise in the initial density
    solver: SolverSpec = field(default_factory=SolverSpec)
    description: str = ""
    preset_params: dict = field(default_factory=dict)   # how a preset built it (record only)

    def __post_init__(self):
        _check_field_types(self, "")
        if not isinstance(self.sims, (list, tuple)):
            raise SpecError(f"sims must be a list of simulations, got {self.sims!r}")
        self.sims = [s if isinstance(s, SimSpec) else SimSpec(**s) for s in self.sims]
        # record preset parameters as plain JSON data (lists, no None) so specs round-trip
        self.preset_params = {k: v for k, v in json.loads(json.dumps(self.preset_params or {})).items()
                              if v is not None}
        if isinstance(self.solver, dict):
            self.solver = SolverSpec(**self.solver)

    # --- derived ---
    @property
    def size(self) -> float:
        return float(self.box_size if self.box_size is not None else self.resolution)

    @property
    def dx(self) -> float:
        return self.size / self.resolution

    @property
    def stored_dt(self) -> float:
        return self.dt * self.save_every

    @property
    def n_frames(self) -> int:
        return self.steps // self.save_every + 1      # frame 0 is the initial state

    def validate(self) -> "ScenarioSpec":
        def need(cond, msg):
            if not cond:
                raise SpecError(f"scenario {self.name!r}: {msg}")
        need(isinstance(self.resolution, int) and self.resolution > 0,
             f"resolution must be a positive integer, got {self.resolution!r}")
        need(self.resolution >= 4, f"resolution must be at least 4, got {self.resolution}")
        need(self.resolution <= MAX_RESOLUTION,
             f"resolution must be at most {MAX_RESOLUTION}, got {self.resolution}: PhiFlow "
             "3.4 indexes the pressure matrix (cells x cells) with 32-bit integers")
        need(self.size > 0, f"box_size must be positive, got {self.box_size!r}")
        need(isinstance(self.steps, int) and self.steps > 0, f"steps must be a positive integer, got {self.steps!r}")
        need(self.dt > 0, f"dt must be positive, got {self.dt!r}")
        need(isinstance(self.save_every, int) and self.save_every > 0,
             f"save_every must be a positive integer, got {self.save_every!r}")
        need(self.save_every <= self.steps, f"save_every ({self.save_every}) exceeds steps ({self.steps})")
        need(self.init_noise >= 0, f"init_noise must be non-negative, got {self.init_noise}")
        need(len(self.sims) > 0, "no simulations")
        s = self.solver
        need(s.method in ("CG", "auto", "biCG-stab(2)", "CG-adaptive"), f"unknown solver method {s.method!r}")
        need(s.rel_tol > 0 and s.abs_tol_per_cell > 0, "solver tolerances must be positive")
        need(s.precision in (32, 64), f"solver precision must be 32 or 64, got {s.precision}")
        need(s.max_iterations is None or s.max_iterations > 0, "solver max_iterations must be positive")
        L = self.size
        for i, sim in enumerate(self.sims):
            where = f"sim {i}"
            need(0 < sim.inflow_x < L and 0 < sim.inflow_y < L,
                 f"{where}: inflow centre ({sim.inflow_x:g}, {sim.inflow_y:g}) is outside the box [0, {L:g}]^2")
            need(sim.inflow_radius > 0, f"{where}: inflow_radius must be positive, got {sim.inflow_radius}")
            need(sim.inflow_rate >= 0, f"{where}: inflow_rate must be non-negative")
            need(len(sim.buoyancy) == 2 and all(math.isfinite(b) for b in sim.buoyancy),
                 f"{where}: buoyancy must be two finite numbers")
            if sim.settling is not None:
                need(len(sim.settling) == 2 and all(math.isfinite(b) for b in sim.settling),
                     f"{where}: settling must be two finite numbers")
                need(max(map(abs, sim.settling)) * self.dt <= self.dx,
                     f"{where}: settling {sim.settling} moves more than one cell per step "
                     f"(|w| dt must be <= the cell size {self.dx:g})")
                need(sim.obstacle is None, f"{where}: settling with an obstacle is not supported")
            if sim.split_x is not None:
                need(0 < sim.split_x < L, f"{where}: split_x={sim.split_x} is outside the box")
                need(sim.buoyancy_right is not None and len(sim.buoyancy_right) == 2,
                     f"{where}: split_x needs buoyancy_right")
            for w in sim.open_walls:
                need(w in WALLS, f"{where}: unknown wall {w!r} in open_walls (use {', '.join(WALLS)})")
            if sim.obstacle is not None:
                x0, y0, x1, y1 = sim.obstacle
                need(0 <= x0 < x1 <= L and 0 <= y0 < y1 <= L,
                     f"{where}: obstacle {sim.obstacle} must satisfy 0 <= x0 < x1 <= {L:g}, 0 <= y0 < y1 <= {L:g}")
                on_faces = all(abs(c / self.dx - round(c / self.dx)) < 1e-9 for c in sim.obstacle)
                need(on_faces, f"{where}: obstacle edges {sim.obstacle} must lie on cell faces "
                               f"(multiples of the cell size {self.dx:g})")
                need(not (x0 <= sim.inflow_x <= x1 and y0 <= sim.inflow_y <= y1),
                     f"{where}: inflow centre lies inside the obstacle")
            need(sim.wall in (-1, 0, 1, 2, 3), f"{where}: wall must be -1..3, got {sim.wall}")
        return self

    # --- (de)serialisation ---
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for sim in d["sims"]:       # written only when used, so older specs keep their hash
            if sim["warmup_steps"] == 0:
                del sim["warmup_steps"]
            if sim["settling"] is None:
                del sim["settling"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=True)

    @classmethod
    def from_dict(cls, d: dict) -> "ScenarioSpec":
        d = dict(d)
        if unknown := _unknown_keys(d, cls):
            raise SpecError(f"unknown scenario keys: {unknown}")
        sims = []
        for i, s in enumerate(d.get("sims", [])):
            if not isinstance(s, dict):
                raise SpecError(f"sim {i}: must be a table of settings, got {s!r}")
            if unknown := _unknown_keys(s, SimSpec):
                raise SpecError(f"sim {i}: unknown keys {unknown}")
            try:
                sims.append(SimSpec(**{k: v for k, v in s.items() if v is not None}))
            except (TypeError, SpecError) as e:
                raise SpecError(f"sim {i}: {e}") from None
        d["sims"] = sims
        if "solver" in d:
            if not isinstance(d["solver"], dict):
                raise SpecError(f"solver must be a table, got {d['solver']!r}")
            if unknown := _unknown_keys(d["solver"], SolverSpec):
                raise SpecError(f"solver: unknown keys {unknown}")
            d["solver"] = SolverSpec(**d["solver"])
        try:
            return cls(**d)
        except TypeError as e:
            raise SpecError(str(e)) from None

    @classmethod
    def from_json(cls, s: str) -> "ScenarioSpec":
        return cls.from_dict(json.loads(s))


# ----------------------------------------------------------------------------- helpers

def rotate_point(x: float, y: float, k: int, size: float) -> tuple[float, float]:
    """Rotate a point by ``k`` counter-clockwise quarter turns about the box centre.
    Exact in floating point for the cell-centred grids used here (only ``size - c``)."""
    for _ in range(k % 4):
        x, y = size - y, x          # (x, y) -> c + R90 (p - c) with c = size/2
    return x, y


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
    _check_pos("resolution", p["resolution"])
    solver = p.pop("solver")
    return dict(name=fn.__name__, description=fn.__doc__.split("\n")[0], preset_params=p,
                resolution=p["resolution"], steps=p["steps"], dt=p["dt"],
                save_every=p["save_every"], seed=p["seed"],
                solver=SolverSpec(**solver) if isinstance(solver, dict) else (solver or SolverSpec()))


def _geom(resolution, inflow_radius, wall_distance):
    default = 5 * resolution / 64
    return (float(resolution), float(default if inflow_radius is None else inflow_radius),
            float(default if wall_distance is None else wall_distance))


def _check_pos(name, v, error=SpecError):
    if not isinstance(v, int) or v <= 0:
        raise error(f"{name} must be a positive integer, got {v!r}")


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
    common = _common(fn, p)
    _check_pos("n_magnitudes", p["n_magnitudes"])
    size, r, d = _geom(p["resolution"], p["inflow_radius"], p["wall_distance"])
    sims = []
    for level in levels:
        block = [_wall_sims(size, r, d, magnitude_fn(j, k, level), k, p["inflow_rate"],
                            magnitude_index=j, level=float(level))
                 for j in range(p["n_magnitudes"]) for k in range(4)]
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
             solver=None) -> ScenarioSpec:
    """Hidden breaking: ``symmetric``'s plumes (one magnitude ``base_buoyancy * (4 j + 1)``
    for all four walls, buoyancy away from the wall) whose smoke settles at
    ``settling_speed`` (box units per time unit) straight down, in every run: the density
    moves with ``u + (0, -settling_speed)`` (conservative upwind fluxes; smoke that
    reaches the floor is deposited and leaves the box). The fixed direction breaks D4 down to the
    mirror ``x -> -x``, and no single frame shows it (the velocity does not settle).
    ``settling_speed = 0`` is the symmetric twin (the runs of ``symmetric``). Held out: an
    evenly spread ~28% of the runs."""
    params = dict(locals())
    if not _is_number(settling_speed) or not math.isfinite(settling_speed) or settling_speed < 0:
        raise SpecError(f"settling_speed must be a non-negative number, got {settling_speed!r}")
    spec = _rotation_family(settling, params, lambda j, k, level: base_buoyancy * (4 * j + 1))
    if settling_speed:
        for s in spec.sims:
            s.settling = (0.0, -float(settling_speed))
    return spec


def symmetric(resolution: int = 64, n_magnitudes: int = 9, base_buoyancy: float = 0.01,
              steps: int = 310, dt: float = 1.0, save_every: int = 1, seed: int = 0,
              inflow_radius: float | None = None, wall_distance: float | None = None,
              inflow_rate: float = 0.2, heldout_fraction: float = 0.28, late_start: int = 0,
              solver=None) -> ScenarioSpec:
    """Control: the same magnitude ``base_buoyancy * (4 j + 1)`` for all four walls, so the
    run from wall ``k`` is the wall-0 run rotated by ``k`` quarter turns (to solver
    tolerance). Inflow positions are exact rotations about the box centre. Held out: an
    evenly spread ~28% of the runs."""
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
    _check_pos("nx", nx)
    _check_pos("ny", ny)
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
    _check_pos("n_inflows", n_inflows)
    _check_pos("n_magnitudes", n_magnitudes)
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


def load_spec(path: str | Path, **overrides) -> ScenarioSpec:
    """Read a TOML spec: either a full spec (top-level keys of :class:`ScenarioSpec`,
    ``[solver]``, ``[[sims]]``) or ``preset = "name"`` with an optional ``[params]`` table."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file {path} not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SpecError(f"spec file {path} is not valid TOML: {e}") from None
    if "preset" in data:
        params = dict(data.get("params", {}), **overrides)
        if extra := set(data) - {"preset", "params"}:
            raise SpecError(f"{path}: with 'preset', only a [params] table is allowed (found {', '.join(sorted(extra))})")
        return preset(data["preset"], **params)
    data.update(overrides)
    data.setdefault("name", path.stem)
    return ScenarioSpec.from_dict(data).validate()


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)              # also nan, inf and -inf, as TOML spells them
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(_toml_items(v)) + "}"
    raise TypeError(f"cannot write {type(v)} to TOML")


def _toml_items(d: dict) -> list[str]:
    return [f"{k} = {_toml_value(v)}" for k, v in d.items() if v is not None]


def spec_to_toml(spec: ScenarioSpec) -> str:
    """Write a spec as TOML that :func:`load_spec` reads back to an equal spec."""
    d = spec.to_dict()
    top = {k: v for k, v in d.items() if k not in ("sims", "solver")}
    lines = [f"# relaxflow scenario spec ({spec.name})", *_toml_items(top), "\n[solver]"]
    lines += _toml_items(d["solver"])
    for s in d["sims"]:
        lines += ["\n[[sims]]", *_toml_items(s)]
    return "\n".join(lines) + "\n"
