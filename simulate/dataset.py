"""The dataset schema: building, writing (atomically), validating and merging.

One ``xarray.Dataset`` per NetCDF4 file (zlib, chunked by sim and time):

* dims ``sim, time, y, x``
* data ``u``, ``v`` (cell-centred velocity, x and y components), ``density``:
  float32 ``(sim, time, y, x)``
* cause fields (time independent) ``buoyancy_x``, ``buoyancy_y``, ``inflow_mask``,
  ``obstacle_mask``, ``open_mask``: float32 ``(sim, y, x)`` (optional for foreign data)
* coords ``x``, ``y`` (cell centres), ``time`` (physical time of the stored frames),
  ``sim`` (index into the spec's simulation list) and per-sim scenario parameters
  (see :data:`SIM_COORDS`), ``heldout`` (bool; the preset's suggested test-domain split)
* attrs: scenario, spec (JSON), dt (of the stored step), save_every, resolution, solver,
  versions, seed, creation time, conventions.

``open_one`` / ``open_dataset`` are the one reader of dataset files for every package
(``simulate info``, merge, train, evaluate) and :func:`validate_dataset` the one schema
check: a file one of them refuses, all refuse, with the same line.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import xarray as xr

from .phiflow_step import cell_centres     # numpy only: PhiFlow is imported lazily there
from .spec import ScenarioSpec

__all__ = ["DatasetError", "OptionRequired", "open_dataset", "open_one", "validate_dataset",
           "read_values",
           "read_block", "build_dataset", "write_dataset",
           "merge", "SIM_COORDS", "FIELD_VARS", "CAUSE_VARS", "SCHEMA_VERSION", "spec_hash",
           "holds_spec"]

SCHEMA_VERSION = 1
DIMS = ("sim", "time", "y", "x")
_CAUSE_DIMS = ("sim", "y", "x")
FIELD_VARS = {
    "u": ("x component of velocity (cell centred)", "m s-1"),
    "v": ("y component of velocity (cell centred)", "m s-1"),
    "density": ("smoke density (passive marker, advected)", "1"),
}
CAUSE_VARS = {
    "buoyancy_x": ("x component of the buoyancy force per unit density", "m s-2"),
    "buoyancy_y": ("y component of the buoyancy force per unit density", "m s-2"),
    "inflow_mask": ("inflow sphere indicator (PhiFlow soft mask, 1 inside)", "1"),
    "obstacle_mask": ("fraction of the cell covered by an obstacle", "1"),
    "open_mask": ("1 on cells adjacent to an open (outflow) wall", "1"),
}
#: coordinates that datasets written before they existed lack
_OPTIONAL_COORDS = ("warmup_steps",)
# name: (getter, dtype, long_name, units)
SIM_COORDS = {
    "wall": (lambda s: s.wall, np.int64, "inflow wall as counter-clockwise quarter turns from the bottom "
             "(0 bottom, 1 right, 2 top, 3 left; -1 none)", "1"),
    "magnitude_index": (lambda s: s.magnitude_index, np.int64, "index of the buoyancy magnitude in the preset (-1 none)", "1"),
    "level": (lambda s: s.level, np.float64, "symmetry-breaking level in [0, 1] (NaN: not a sweep)", "1"),
    "inflow_x": (lambda s: s.inflow_x, np.float64, "x of the inflow sphere centre", "m"),
    "inflow_y": (lambda s: s.inflow_y, np.float64, "y of the inflow sphere centre", "m"),
    "inflow_radius": (lambda s: s.inflow_radius, np.float64, "inflow sphere radius", "m"),
    "inflow_rate": (lambda s: s.inflow_rate, np.float64, "density added per unit time inside the inflow", "s-1"),
    "buoyancy_vx": (lambda s: s.buoyancy[0], np.float64, "x of the buoyancy vector (whole box, or x < split_x)", "m s-2"),
    "buoyancy_vy": (lambda s: s.buoyancy[1], np.float64, "y of the buoyancy vector (whole box, or x < split_x)", "m s-2"),
    "buoyancy_magnitude": (lambda s: math.hypot(*s.buoyancy), np.float64, "norm of the buoyancy vector", "m s-2"),
    "split_x": (lambda s: np.nan if s.split_x is None else s.split_x, np.float64,
                "x where buoyancy_right starts (NaN: uniform buoyancy)", "m"),
    "buoyancy_right_vx": (lambda s: np.nan if s.buoyancy_right is None else s.buoyancy_right[0], np.float64,
                          "x of the buoyancy vector where x >= split_x", "m s-2"),
    "buoyancy_right_vy": (lambda s: np.nan if s.buoyancy_right is None else s.buoyancy_right[1], np.float64,
                          "y of the buoyancy vector where x >= split_x", "m s-2"),
    "warmup_steps": (lambda s: s.warmup_steps, np.int64, "solver steps run before frame 0 (the "
                     "physical time of a frame is time + warmup_steps * solver_dt)", "1"),
    "open_walls": (lambda s: ",".join(s.open_walls), str, "comma-separated open walls (empty: closed box)", ""),
    "obstacle_x0": (lambda s: np.nan if s.obstacle is None else s.obstacle[0], np.float64, "obstacle box x min (NaN: none)", "m"),
    "obstacle_y0": (lambda s: np.nan if s.obstacle is None else s.obstacle[1], np.float64, "obstacle box y min", "m"),
    "obstacle_x1": (lambda s: np.nan if s.obstacle is None else s.obstacle[2], np.float64, "obstacle box x max", "m"),
    "obstacle_y1": (lambda s: np.nan if s.obstacle is None else s.obstacle[3], np.float64, "obstacle box y max", "m"),
    "heldout": (lambda s: bool(s.heldout), bool, "suggested test-domain (held-out) simulation", ""),
}
CONVENTIONS = (
    "Arrays are indexed [sim, time, y, x]; y and x ascend with the index (cell centres, "
    "y up with origin='lower'). u, v are the x, y velocity components at cell centres (same grid "
    "as density). Rotations act counter-clockwise about the box centre; one quarter turn maps "
    "(u, v) -> (-v, u) (see simulate/symmetry.py). Wall k is the bottom-wall setup rotated by k "
    "counter-clockwise quarter turns: 0 bottom, 1 right, 2 top, 3 left. Frame 0 is the initial state; "
    "dt is the time between stored frames. Lengths in box units (one unit per cell by default).")


class DatasetError(ValueError):
    """A file or dataset that does not follow the relaxflow dataset schema."""


class OptionRequired(DatasetError):
    """Refused unless the caller passes ``option``: the message names it as Python's
    keyword (``allow_partial=True``), :meth:`for_cli` as the command-line flag
    (``--allow-partial``)."""

    def __init__(self, template: str, option: str) -> None:
        self.template, self.option = template, option
        super().__init__(template.format(option=f"{option}=True"))

    def for_cli(self) -> str:
        """The message naming the flag, for a command line."""
        return self.template.format(option="--" + self.option.replace("_", "-"))


def spec_hash(spec: ScenarioSpec) -> str:
    return hashlib.sha256(spec.to_json().encode()).hexdigest()[:16]


def holds_spec(path: str | Path, spec: ScenarioSpec, shard: str = "0/1") -> bool:
    """Whether ``path`` is a readable dataset made from ``spec`` (same spec hash) and
    ``shard``: the check that decides whether a finished output can be reused."""
    if not Path(path).is_file():
        return False
    try:
        with open_dataset(path) as ds:
            return ds.attrs.get("spec_hash") == spec_hash(spec) and \
                ds.attrs.get("shard", "0/1") == shard
    except DatasetError:
        return False


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for dist in ("phiflow", "phiml", "relaxflow", "torch", "xarray"):
        try:
            out[f"{dist}_version"] = version(dist)
        except PackageNotFoundError:
            out[f"{dist}_version"] = "unknown"
    return out


def build_dataset(spec: ScenarioSpec, indices: Sequence[int], fields: dict, causes: dict,
                  extra_attrs: dict | None = None) -> xr.Dataset:
    """Assemble the schema dataset for ``spec.sims[i] for i in indices`` from simulated
    ``fields`` (``u, v, density``: ``(n, T, y, x)``) and ``causes`` (``(n, y, x)``)."""
    indices = [int(i) for i in indices]
    sims = [spec.sims[i] for i in indices]
    centres = cell_centres(spec)
    coords = {
        "sim": ("sim", np.asarray(indices, np.int64), {"long_name": "simulation index in the scenario spec"}),
        "time": ("time", np.arange(fields["density"].shape[1]) * spec.stored_dt,
                 {"long_name": "time since frame 0", "units": "s"}),
        "y": ("y", centres, {"long_name": "y of the cell centre", "units": "m", "axis": "Y"}),
        "x": ("x", centres, {"long_name": "x of the cell centre", "units": "m", "axis": "X"}),
    }
    for name, (get, dtype, long_name, units) in SIM_COORDS.items():
        vals = np.array([get(s) for s in sims], dtype=object if dtype is str else dtype)
        attrs = {"long_name": long_name} | ({"units": units} if units else {})
        coords[name] = ("sim", vals, attrs)
    data = {name: (dims, np.asarray(src[name], np.float32), {"long_name": ln, "units": units})
            for names, dims, src in ((FIELD_VARS, DIMS, fields), (CAUSE_VARS, _CAUSE_DIMS, causes))
            for name, (ln, units) in names.items()}
    sv = spec.solver
    attrs = {
        "title": f"relaxflow smoke plume: {spec.name}",
        "Conventions": "CF-1.8",
        "relaxflow_schema_version": SCHEMA_VERSION,
        "scenario": spec.name,
        "description": spec.description,
        "spec": spec.to_json(),
        "spec_hash": spec_hash(spec),
        "n_sims_in_spec": len(spec.sims),
        "dt": float(spec.stored_dt),
        "solver_dt": float(spec.dt),
        "save_every": int(spec.save_every),
        "steps": int(spec.steps),
        "resolution": int(spec.resolution),
        "box_size": float(spec.size),
        "seed": int(spec.seed),
        "solver": json.dumps({
            "pressure_solve": f"fluid.make_incompressible, Solve('{sv.method}', rel_tol={sv.rel_tol:g}, "
                              f"abs_tol={sv.abs_tol(spec.resolution):g}, x0=previous pressure, "
                              f"max_iterations={sv.iterations(spec.resolution)}, rank_deficiency=0)",
            "precision": sv.precision, "stored_precision": 32,
            "advection": "density MacCormack, velocity semi-Lagrangian",
            "compiled": "phiml jit_compile (torch backend)",
            "residual_check": f"||div u||_2 <= {sv.check_factor:g} x max(rel_tol ||rhs||_2, abs_tol) every step",
        }),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "relaxflow_conventions": CONVENTIONS,
        **_versions(),
        **(extra_attrs or {}),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _encoding(ds: xr.Dataset) -> dict:
    chunk = {"sim": 1, "time": min(ds.sizes.get("time", 1), 8)}
    enc = {name: {"zlib": True, "complevel": 4, "shuffle": True,
                  "chunksizes": tuple(chunk.get(d, ds.sizes[d]) for d in var.dims)}
           for name, var in ds.data_vars.items()}
    return enc | {name: {"_FillValue": None} for name in ds.coords if ds[name].dtype.kind == "f"}


def _new_file_mode() -> int:
    """``0o666 & ~umask``, the mode ``open()`` would give a new file."""
    try:  # Linux: read it without changing the process umask
        with open("/proc/self/status") as f:
            umask = next(int(l.split()[1], 8) for l in f if l.startswith("Umask:"))
    except (OSError, StopIteration):  # pragma: no cover - not Linux
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def write_dataset(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` to ``path`` atomically: a temporary file ``.NAME.XXXXXXXX.tmp`` in the
    same directory, then ``os.replace`` (a killed writer never leaves a partial file under
    ``path``; a later run that holds ``path`` removes the temporary). A disk that fills
    up raises the one-line ``surrogate.diskfull.DiskFullError`` naming ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(ds))
        os.chmod(tmp, _new_file_mode())  # mkstemp makes 0600; the dataset follows the umask
        os.replace(tmp, path)
    except BaseException as e:
        full = _disk_full(e, path)  # before the partial file goes: it fills the disk
        Path(tmp).unlink(missing_ok=True)
        if full is not None:
            raise full from e
        raise
    return path


def _disk_full(e: BaseException, path: Path):
    """``surrogate.diskfull.disk_full_error(e, path)`` (imported only on failure: reading
    and writing datasets need no torch)."""
    if not isinstance(e, (OSError, RuntimeError)):
        return None
    from surrogate.diskfull import disk_full_error
    return disk_full_error(e, path)


# ----------------------------------------------------------------------------- reading

def validate_dataset(ds: xr.Dataset, name: str = "dataset", *, check_nans: bool = False,
                     require_metadata: bool = False, require: Sequence[str] = ()
                     ) -> xr.Dataset:
    """The schema check of every reader (``simulate info``, merge, train, evaluate):
    raise :class:`DatasetError` naming ``name`` (the file) and the problem.

    The fields ``u, v, density`` must exist as float ``(sim, time, y, x)``, in that dim
    order; so must any other data variable over those four dims (a model's extra
    channels in foreign data) and every name in ``require`` (the channels a reader's
    model needs). ``check_nans`` reads the values (:func:`read_values`)."""
    def fail(msg):
        raise DatasetError(f"{name}: {msg}")
    for d in DIMS:
        if d not in ds.dims:
            fail(f"missing dimension {d!r} (dims are {tuple(ds.dims)}; expected {DIMS})")
    for v in FIELD_VARS:
        if v not in ds.variables:
            fail(f"missing variable {v!r} (the schema needs {', '.join(FIELD_VARS)})")
    for v in require:
        if v not in ds.variables:
            fail(f"missing variable {v!r} (the model needs {', '.join(require)})")
    fields = list(dict.fromkeys([*FIELD_VARS, *require]))
    extra = [v for v in ds.data_vars if v not in fields and set(ds[v].dims) == set(DIMS)]
    for v in [*fields, *extra]:
        if ds[v].dims != DIMS:
            fail(f"variable {v!r} has dims {ds[v].dims}, expected {DIMS}")
        if ds[v].dtype.kind != "f":
            fail(f"variable {v!r} has dtype {ds[v].dtype}, expected a float type")
    for v in CAUSE_VARS:
        if v in ds.variables and ds[v].dims != _CAUSE_DIMS:
            fail(f"variable {v!r} has dims {ds[v].dims}, expected {_CAUSE_DIMS}")
    for c in ("time", "y", "x"):
        if c not in ds.coords:
            fail(f"missing coordinate {c!r} (the schema needs 1-D, increasing time, y and "
                 f"x coordinates, e.g. ds.assign_coords({c}=...))")
        vals = np.asarray(ds[c].values, float)
        if ds[c].dims != (c,):
            fail(f"coordinate {c!r} has dims {ds[c].dims}, expected ({c!r},)")
        if vals.size > 1 and not np.all(np.diff(vals) > 0):
            fail(f"coordinate {c!r} is not strictly increasing")
    if ds.sizes["y"] < 2 or ds.sizes["x"] < 2 or ds.sizes["time"] < 1 or ds.sizes["sim"] < 1:
        fail(f"empty or degenerate dimensions {dict(ds.sizes)}")
    for c, coord in ds.coords.items():
        if c not in ("time", "y", "x") and "sim" in coord.dims and coord.dims != ("sim",):
            fail(f"per-simulation coordinate {c!r} has dims {coord.dims}, expected ('sim',)")
    if require_metadata:
        missing = [c for c in SIM_COORDS if c not in ds.coords and c not in _OPTIONAL_COORDS] + [a for a in ("spec", "dt") if a not in ds.attrs]
        if missing:
            fail(f"scenario metadata missing: {', '.join(missing)}")
    if check_nans:
        read_values(ds, name, check_nans=True)
    return ds


def _cause(e: BaseException) -> str:
    """A failed read's exception on one line: ``Type: message``."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def read_block(da: xr.DataArray, name: str) -> np.ndarray:
    """``da.values``; a read that fails (a damaged HDF5 chunk, a truncated file) raises
    :class:`DatasetError` naming ``name`` (the file), the variable and "corrupt or
    unreadable"."""
    try:
        return da.values
    except MemoryError:
        raise
    except Exception as e:   # netCDF4/HDF5 raise RuntimeError, OSError, ValueError ...
        raise DatasetError(f"{name}: corrupt or unreadable data in variable {da.name!r} "
                           f"({_cause(e)})") from None


def read_values(ds: xr.Dataset, name: str = "dataset", *, check_nans: bool = False) -> None:
    """Read every variable of ``ds`` once, one simulation at a time (so a damaged block
    anywhere in the file is found: :func:`read_block`); ``check_nans`` also refuses
    non-finite values in ``u, v, density``."""
    for v in ds.variables:
        var = ds[v]
        for s in range(ds.sizes["sim"]) if "sim" in var.dims and var.ndim > 1 else [None]:
            block = read_block(var if s is None else var.isel(sim=s), name)
            if check_nans and v in FIELD_VARS and not np.isfinite(block).all():
                raise DatasetError(f"{name}: variable {v!r} has non-finite values (first in "
                                   f"sim position {s})")


def open_one(path: str | Path, *, cache: bool = True, check_nans: bool = False,
             require_metadata: bool = False, load: bool = False, scan: bool = False,
             require: Sequence[str] = ()) -> xr.Dataset:
    """Open and validate one file (:func:`validate_dataset`), lazily unless ``load``:
    the reader of every stage. ``scan`` reads every value once (finds damaged blocks;
    ``check_nans`` implies it); ``require``: variables the caller needs besides
    ``u, v, density`` (train: its model's channels); ``cache=False``: no array cache
    (training streams lazy data)."""
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path}: is a directory, not a NetCDF data file")
    if not path.exists():
        raise DatasetError(f"{path}: no such data file")
    try:
        ds = xr.open_dataset(path, engine="netcdf4", decode_timedelta=False, cache=cache)
    except Exception as e:   # netCDF4/HDF5 raise OSError, RuntimeError, ValueError ...
        raise DatasetError(f"{path}: corrupt or unreadable (not a NetCDF4 file, or a "
                           f"truncated or damaged one: {_cause(e)})") from None
    try:
        if load:                 # read everything, then release the file handle
            try:
                ds = ds.load()
            except MemoryError:
                raise
            except Exception as e:
                raise DatasetError(f"{path}: corrupt or unreadable data ({_cause(e)})"
                                   ) from None
            ds.close()
        if "sim" not in ds.coords and "sim" in ds.dims:
            ds = ds.assign_coords(sim=np.arange(ds.sizes["sim"]))
        validate_dataset(ds, str(path), require_metadata=require_metadata, require=require)
        if scan or check_nans:
            read_values(ds, str(path), check_nans=check_nans)
    except BaseException:
        ds.close()
        raise
    return ds


def open_dataset(paths: str | Path | Iterable[str | Path], *, check_nans: bool = False,
                 require_metadata: bool = False, load: bool = False,
                 scan: bool = False) -> xr.Dataset:
    """Open one file or several (joined along ``sim``, sorted by ``sim``) and validate the
    schema. Raises :class:`DatasetError` naming the file and the problem.
    ``load=True`` reads everything into memory; ``scan=True`` reads every value once
    without keeping it (both detect damaged data blocks: "corrupt or unreadable");
    ``check_nans=True`` also rejects non-finite values in ``u, v, density``."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise DatasetError("open_dataset: no files given")
    dss = [open_one(p, check_nans=check_nans, require_metadata=require_metadata,
                    load=load, scan=scan) for p in paths]
    if len(dss) == 1:
        return dss[0]
    first = dss[0]
    for p, ds in zip(paths[1:], dss[1:]):
        for c in ("x", "y", "time"):
            if ds.sizes[c] != first.sizes[c] or not np.allclose(ds[c].values, first[c].values):
                raise DatasetError(f"{p}: coordinate {c!r} differs from {paths[0]}; cannot join")
        h0, h1 = first.attrs.get("spec_hash"), ds.attrs.get("spec_hash")
        if h0 is not None and h1 is not None and h0 != h1:
            raise DatasetError(f"{p}: made from a different scenario spec than {paths[0]} "
                               f"(spec_hash {h1} vs {h0}); cannot join")
        if diff := set(ds.variables) ^ set(first.variables):
            raise DatasetError(f"{p}: variables differ from {paths[0]} ({', '.join(sorted(diff))})")
    vals, counts = np.unique(np.concatenate([ds["sim"].values for ds in dss]), return_counts=True)
    if dup := [int(v) for v in vals[counts > 1]]:
        raise DatasetError(f"the files share simulation indices {dup[:10]}; cannot join")
    out = xr.concat(dss, dim="sim", data_vars="minimal", coords="minimal", compat="override",
                    join="exact", combine_attrs="override")
    return out.isel(sim=np.argsort(out["sim"].values, kind="stable"))


def merge(paths: Sequence[str | Path], out: str | Path, *, overwrite: bool = False,
          allow_partial: bool = False) -> Path:
    """Join shard files into one file (atomically). Refuses incomplete sets of shards
    (relative to the spec in their attrs) unless ``allow_partial``. One process at a time
    owns ``out`` (:func:`surrogate.folders.hold`, as ``generate``); the temporaries a
    killed merge into ``out`` left are removed."""
    from surrogate.folders import hold  # torch is loaded with it, as by generate
    out = Path(out)
    with hold(out, DatasetError):
        return _merge(paths, out, overwrite, allow_partial)


def _merge(paths: Sequence[str | Path], out: Path, overwrite: bool,
           allow_partial: bool) -> Path:
    """:func:`merge` once ``out`` is held."""
    from surrogate.folders import clear_leftovers
    clear_leftovers(out)
    if out.exists() and not overwrite:
        raise OptionRequired(f"{out}: output exists (pass {{option}} to replace it)",
                             "overwrite")
    ds = open_dataset(paths, load=True)
    n_spec = ds.attrs.get("n_sims_in_spec")
    if n_spec is not None and not allow_partial:
        if missing := sorted(set(range(int(n_spec))) - set(int(s) for s in ds["sim"].values)):
            more = "..." if len(missing) > 10 else ""
            raise OptionRequired(f"merge: simulations {missing[:10]}{more} of {n_spec} are "
                                 "in none of the files (pass {option} to merge anyway)",
                                 "allow_partial")
    ds.attrs.pop("shard", None)
    write_dataset(ds, out)
    ds.close()
    return out
