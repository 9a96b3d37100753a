"""Scenario specifications: a :class:`ScenarioSpec` holds global settings (grid, time
stepping, solver) and an explicit list of :class:`SimSpec`, one per simulation.
Everything that breaks (or keeps) the symmetry is data in these specs -- buoyancy
vectors, inflow positions, open walls, obstacles -- never code, so a dataset's attrs
fully describe it. Named presets build specs (:mod:`simulate.presets`); specs read and
write TOML (:mod:`simulate.spec_toml`).

Units: lengths in the box's units (``box_size`` defaults to ``resolution``, i.e. one
unit per cell, as in the paper), time in solver time units, buoyancy in force per unit
density.  Walls are numbered by counter-clockwise quarter turns from the bottom wall
(the convention of :mod:`simulate.symmetry`): ``0 bottom, 1 right, 2 top, 3 left``; the
setup at wall ``k`` is the bottom-wall setup rotated by ``k * 90`` degrees
counter-clockwise about the box centre.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SpecError", "SimSpec", "SolverSpec", "ScenarioSpec", "WALLS", "MAX_RESOLUTION",
           "rotate_point"]

WALLS = ("bottom", "right", "top", "left")
# PhiFlow 3.4 builds the pressure matrix with 32-bit flat indices over (cells x cells):
# a square grid needs resolution**4 < 2**31, i.e. at most 215 cells per side
MAX_RESOLUTION = 215


#: the stirred-start settings of a :class:`SimSpec` at their defaults (start at rest)
_STIR_DEFAULTS = {"initial_pattern": -1, "initial_speed": 0.0, "initial_turns": 0}


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
    # a stirred start instead of rest: pattern n >= 0 of the spec's seed (a random
    # divergence-free velocity of rms speed ``initial_speed`` and random density blobs),
    # turned by ``initial_turns`` counter-clockwise quarter turns; -1: start at rest
    initial_pattern: int = -1
    initial_speed: float = 0.0
    initial_turns: int = 0
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
    periodic: bool = False              # the box wraps around in x and y (no walls)
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
            need(sim.initial_pattern >= -1,
                 f"{where}: initial_pattern must be -1 (start at rest) or >= 0, got "
                 f"{sim.initial_pattern}")
            need(math.isfinite(sim.initial_speed) and sim.initial_speed >= 0,
                 f"{where}: initial_speed must be a non-negative number, got {sim.initial_speed}")
            need(sim.initial_turns in (0, 1, 2, 3),
                 f"{where}: initial_turns must be 0..3 quarter turns, got {sim.initial_turns}")
            need(sim.initial_pattern >= 0 or (sim.initial_speed == 0 and sim.initial_turns == 0),
                 f"{where}: initial_speed and initial_turns need an initial_pattern >= 0")
            need(sim.initial_pattern < 0 or self.periodic,
                 f"{where}: a stirred start (initial_pattern {sim.initial_pattern}) needs a "
                 "periodic box: its random velocity wraps around")
            if self.periodic:
                need(not sim.open_walls, f"{where}: a periodic box has no walls to open "
                                         f"(open_walls {','.join(sim.open_walls)})")
                need(sim.obstacle is None, f"{where}: obstacles in a periodic box are not supported")
        return self

    # --- (de)serialisation ---
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for sim in d["sims"]:       # written only when used, so older specs keep their hash
            if sim["warmup_steps"] == 0:
                del sim["warmup_steps"]
            if sim["settling"] is None:
                del sim["settling"]
            for k, default in _STIR_DEFAULTS.items():
                if sim[k] == default:
                    del sim[k]
        if not d["periodic"]:
            del d["periodic"]
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


def rotate_point(x: float, y: float, k: int, size: float) -> tuple[float, float]:
    """Rotate a point by ``k`` counter-clockwise quarter turns about the box centre.
    Exact in floating point for the cell-centred grids used here (only ``size - c``)."""
    for _ in range(k % 4):
        x, y = size - y, x          # (x, y) -> c + R90 (p - c) with c = size/2
    return x, y


def check_positive(name: str, v, error: type[Exception] = SpecError) -> None:
    """Refuse ``v`` unless it is a positive integer (``error`` names ``name``)."""
    if not isinstance(v, int) or v <= 0:
        raise error(f"{name} must be a positive integer, got {v!r}")
