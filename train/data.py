"""Open and validate training data: NetCDF files in the relaxflow dataset schema.

Schema (what :mod:`simulate` writes, and what any other producer may write; checked by
:func:`simulate.dataset.validate_dataset`, the one check of every reader, so that train
accepts exactly the files evaluate and ``simulate info`` accept): dims
``sim, time, y, x``; float data variables ``u``, ``v``, ``density`` (and the model's
channels) over ``(sim, time, y, x)`` in that order; coords ``x``, ``y``, ``time``; optionally per-sim
coords (scenario parameters) including a boolean ``heldout``; attrs such as
``scenario`` and ``dt``; optionally static per-sim fields over ``(sim, y, x)`` (the
cause fields ``buoyancy_x``, ``buoyancy_y``, ``inflow_mask``, ``obstacle_mask``,
``open_mask``), required only when the model's ``cause`` breaking input asks for them
(``aux_channels``). Several files (shards) are concatenated along ``sim`` in the
order given; they must agree on ``time``, ``y`` and ``x`` sizes.

Everything training needs is checked here, before any training starts: files readable
(every value of the model's channels is read once: a damaged block is "corrupt or
unreadable"), variables present with the right dims, enough time steps, no NaN or Inf. Data are held
in memory when they fit (``in_memory="auto"``), otherwise read lazily, window by
window, through xarray.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import xarray as xr

from surrogate.breaking import CauseFieldError, read_cause_fields
from surrogate.records import DataRecord

__all__ = ["DataError", "FieldData", "open_data", "DIMS"]

DIMS = ("sim", "time", "y", "x")


class DataError(ValueError):
    """A dataset that cannot be trained on (missing variable, too short, NaN, ...)."""


def _available_memory() -> float:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return float("inf")


def _json_attr(v: Any) -> Any:
    return v.tolist() if isinstance(v, (np.generic, np.ndarray)) else v


@dataclass
class FieldData:
    """Fields of all simulations as ``(sim, time, channel, y, x)`` float32, in memory
    (``array``) or lazily read from ``paths``; static aux fields ``aux`` as
    ``(sim, aux_channel, y, x)`` float32, always in memory (None without aux)."""

    paths: list[str]
    channels: tuple[str, ...]
    sims_per_file: list[int]
    n_time: int
    ny: int
    nx: int
    attrs: dict[str, Any]
    grid: dict[str, Any]
    heldout: np.ndarray | None = None
    sim_coords: dict[str, list] = field(default_factory=dict)
    array: np.ndarray | None = None
    aux_channels: tuple[str, ...] = ()
    aux: np.ndarray | None = None
    dtypes: dict[str, str] = field(default_factory=dict)          # as stored in the files
    moments: dict[str, list[float]] = field(default_factory=dict)  # [sum, sum of squares]
    _open: dict = field(default_factory=dict, repr=False)

    @property
    def n_sims(self) -> int:
        return sum(self.sims_per_file)

    @property
    def in_memory(self) -> bool:
        return self.array is not None

    @property
    def nbytes(self) -> int:
        return self.n_sims * self.n_time * len(self.channels) * self.ny * self.nx * 4

    def _locate(self, sim: int) -> tuple[int, int]:
        for f, n in enumerate(self.sims_per_file):
            if sim < n:
                return f, sim
            sim -= n
        raise IndexError("sim index out of range")

    def _dataset(self, f: int) -> xr.Dataset:
        key = (os.getpid(), f)  # reopen in each worker process (HDF5 is not fork-safe)
        if key not in self._open:
            self._open[key] = _open_one(self.paths[f], self.channels)
        return self._open[key]

    def frames(self, sim: int, t0: int, t1: int) -> np.ndarray:
        """Frames ``t0 .. t1-1`` of ``sim`` as ``(t1-t0, C, ny, nx)`` float32."""
        if self.array is not None:
            return self.array[sim, t0:t1]
        f, local = self._locate(sim)
        out = [_values(self._dataset(f)[c].isel(sim=local, time=slice(t0, t1)),
                       self.paths[f]) for c in self.channels]
        return np.stack(out, axis=1).astype(np.float32, copy=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_open"] = {}
        return state

    def close(self) -> None:
        for ds in self._open.values():
            ds.close()
        self._open.clear()

    def record(self) -> DataRecord:
        """The facts about the data a checkpoint records."""
        dt = self.attrs.get("dt")
        return DataRecord(files=tuple(os.path.abspath(p) for p in self.paths),
                          sims_per_file=tuple(self.sims_per_file), n_time=self.n_time,
                          channels=tuple(self.channels), aux_channels=tuple(self.aux_channels),
                          scenario=self.attrs.get("scenario"),
                          dt=float(dt) if dt is not None else None, grid=dict(self.grid),
                          sim_coords=dict(self.sim_coords), dtypes=dict(self.dtypes),
                          moments={c: list(m) for c, m in self.moments.items()})

    def describe(self) -> dict[str, Any]:
        """JSON-able facts about the data for the checkpoint metadata."""
        return self.record().to_dict()


def _open_one(path: str, channels: Sequence[str]) -> xr.Dataset:
    """One file through the reader and schema check every stage uses
    (:func:`simulate.dataset.open_one`; the model's channels required too; no array
    cache: lazy data are streamed)."""
    from simulate.dataset import DatasetError, open_one

    try:
        return open_one(path, require=channels, cache=False)
    except DatasetError as e:
        raise DataError(str(e)) from None


def _values(da: xr.DataArray, path: str) -> np.ndarray:
    """``da.values``; a damaged block: :class:`DataError` "corrupt or unreadable"."""
    from simulate.dataset import DatasetError, read_block

    try:
        return read_block(da, path)
    except DatasetError as e:
        raise DataError(str(e)) from None


def _read_aux(path: str, ds: xr.Dataset, names: Sequence[str], needed_by: str) -> np.ndarray:
    """The static fields ``names`` of one file as ``(sim, C, y, x)`` float32."""
    for n in names:   # small static fields: read once here to name a damaged block
        if n in ds.variables:
            _values(ds[n], path)
    try:
        block = read_cause_fields(ds, names)
    except CauseFieldError as e:
        if e.missing:
            raise DataError(f"{path}: missing variable(s) {e.missing} that {needed_by} needs "
                            f"(static fields {list(names)} over dims ('sim', 'y', 'x'), as "
                            "relaxflow's simulate writes them); use such data or drop it "
                            "from breaking_inputs") from None
        raise DataError(f"{path}: {e} (it is needed by {needed_by})") from None
    bad = ~np.isfinite(block)
    if bad.any():
        s, c = (int(i) for i in np.argwhere(bad)[0][:2])
        raise DataError(f"{path}: variable {names[c]!r} holds NaN or Inf (first at sim "
                        f"{s}); refusing to train on it")
    return block


def _check_finite(block: np.ndarray, path: str, var: str, sim: int,
                  moments: list[float] | None = None) -> None:
    """Refuse NaN/Inf in ``block``; add its sum and sum of squares (float64) to
    ``moments``."""
    if moments is not None:
        b = block.astype(np.float64, copy=False)
        moments[0] += float(b.sum())
        moments[1] += float(np.square(b).sum())
    bad = ~np.isfinite(block)
    if bad.any():
        t = int(np.argwhere(bad)[0][0])
        kind = "NaN" if np.isnan(block).any() else "Inf"
        raise DataError(f"{path}: variable {var!r} holds {kind} values (first at sim {sim}, "
                        f"time index {t}, {int(bad.sum())} values in that sim); "
                        "refusing to train on it")


def open_header(paths: Sequence[str | os.PathLike],
                channels: Sequence[str] = ("u", "v", "density"), *, min_time: int = 1,
                min_time_for: str = "T_in + K", aux_channels: Sequence[str] = (),
                aux_needed_by: str = "the model's breaking inputs") -> FieldData:
    """Open and validate ``paths`` and read what describes them: sizes, grid, per-sim
    coordinates, attributes and the static ``aux_channels`` over ``(sim, y, x)`` (a file
    lacking one is refused naming ``aux_needed_by``). No field values are read yet
    (:func:`read_fields`). ``min_time``: the fewest frames per simulation, refused below
    with a message saying what needs them (``min_time_for``). Raises :class:`DataError`."""
    paths = [str(p) for p in paths]
    if not paths:
        raise DataError("no data files given (--data a.nc [b.nc ...])")
    channels, aux_channels = tuple(channels), tuple(aux_channels)
    _refuse_repeats(paths)
    datasets = [_open_one(p, channels) for p in paths]
    try:
        aux = (np.concatenate([_read_aux(p, ds, aux_channels, aux_needed_by)
                               for p, ds in zip(paths, datasets)])
               if aux_channels else None)
        n_time, ny, nx = _shared_sizes(paths, datasets, min_time, min_time_for)
        sims_per_file = [int(ds.sizes["sim"]) for ds in datasets]
        heldout, sim_coords = _sim_coords(datasets)
        first = datasets[0]
        attrs = {k: _json_attr(v) for k, v in first.attrs.items()
                 if isinstance(_json_attr(v), (str, int, float, bool))}
        return FieldData(paths, channels, sims_per_file, n_time, ny, nx, attrs,
                         _grid(first, ny, nx), heldout, sim_coords,
                         aux_channels=aux_channels, aux=aux)
    finally:
        for ds in datasets:
            ds.close()


def read_fields(data: FieldData, *, in_memory: str = "auto",
                max_memory_gb: float = 8.0) -> FieldData:
    """Read the field values of ``data`` (from :func:`open_header`) once: every value
    checked finite, dtypes and moments recorded, and the fields loaded into memory
    (``data.array``) when ``in_memory`` is "yes", or "auto" and they take at most
    ``max_memory_gb`` and half the free memory. Returns ``data``."""
    datasets = [_open_one(p, data.channels) for p in data.paths]
    try:
        budget = min(max_memory_gb * 2**30, 0.5 * _available_memory())
        load = in_memory == "yes" or (in_memory == "auto" and data.nbytes <= budget)
        data.array = _read_fields(data.paths, datasets, data, load)
        return data
    finally:
        for ds in datasets:
            ds.close()


def open_data(paths: Sequence[str | os.PathLike], channels: Sequence[str] = ("u", "v", "density"),
              *, min_time: int = 1, min_time_for: str = "T_in + K",
              in_memory: str = "auto",
              max_memory_gb: float = 8.0, aux_channels: Sequence[str] = (),
              aux_needed_by: str = "the model's breaking inputs") -> FieldData:
    """:func:`open_header`, then :func:`read_fields`: open, validate and (when it fits)
    load ``paths``. Raises :class:`DataError`."""
    data = open_header(paths, channels, min_time=min_time, min_time_for=min_time_for,
                       aux_channels=aux_channels, aux_needed_by=aux_needed_by)
    return read_fields(data, in_memory=in_memory, max_memory_gb=max_memory_gb)


def _refuse_repeats(paths: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    for p in paths:
        real = os.path.realpath(p)
        if real in seen:
            raise DataError(f"{p}: the same file is given twice (also as {seen[real]}); its "
                            "simulations would appear in two splits")
        seen[real] = p


def _shared_sizes(paths: Sequence[str], datasets: Sequence[xr.Dataset], min_time: int,
                  min_time_for: str) -> tuple[int, int, int]:
    """``(n_time, ny, nx)``, which every file must share."""
    n_time, ny, nx = (int(datasets[0].sizes[d]) for d in ("time", "y", "x"))
    for p, ds in zip(paths, datasets):
        sizes = tuple(int(ds.sizes[d]) for d in ("time", "y", "x"))
        if sizes != (n_time, ny, nx):
            raise DataError(f"{p}: (time, y, x) sizes {sizes} differ from {paths[0]}'s "
                            f"{(n_time, ny, nx)}; shards must share one grid and time axis")
    if n_time < min_time:
        raise DataError(f"{paths[0]}: {n_time} frames per simulation are too few; training "
                        f"needs at least {min_time} (the fewest with which {min_time_for})")
    return n_time, ny, nx


def _sim_coords(datasets: Sequence[xr.Dataset]) -> tuple[np.ndarray | None, dict[str, list]]:
    """The ``heldout`` flags (when every file has them) and the JSON-able per-simulation
    coordinates that every file shares, over the concatenated files."""
    per_sim = {str(name): np.concatenate([np.atleast_1d(ds[name].values) for ds in datasets])
               for name in datasets[0].coords
               if all(name in ds.coords and ds[name].dims == ("sim",) for ds in datasets)}
    heldout = per_sim["heldout"].astype(bool) if "heldout" in per_sim else None
    return heldout, {name: [_json_attr(v) for v in vals] for name, vals in per_sim.items()
                     if vals.dtype.kind in "biufU"}


def _grid(first: xr.Dataset, ny: int, nx: int) -> dict[str, Any]:
    """Grid size and first/last coordinates (``validate_dataset`` made sure they exist)."""
    grid: dict[str, Any] = {"ny": ny, "nx": nx}
    for d in ("x", "y", "time"):
        if d != "time" or np.issubdtype(first[d].dtype, np.number):
            grid[d] = [float(first[d].values[0]), float(first[d].values[-1])]
    return grid


def _read_fields(paths: Sequence[str], datasets: Sequence[xr.Dataset], data: FieldData,
                 load: bool) -> np.ndarray | None:
    """Check every value is finite; with ``load`` also return the fields as one
    ``(sim, time, C, y, x)`` float32 array (the peak is that array plus one variable of
    one file, not two full copies)."""
    array = (np.empty((data.n_sims, data.n_time, len(data.channels), data.ny, data.nx),
                      np.float32) if load else None)
    offset = 0
    data.moments = {c: [0.0, 0.0] for c in data.channels}
    for p, ds, n_sims in zip(paths, datasets, data.sims_per_file):
        for ci, c in enumerate(data.channels):
            var = ds[c]
            dtype = str(var.dtype)
            if data.dtypes.setdefault(c, dtype) != dtype:
                data.dtypes[c] = "mixed"
            m = data.moments[c]
            if load:
                block = _values(var, p)
                for s in range(block.shape[0]):
                    _check_finite(block[s], p, c, s, m)
                block = block.astype(np.float32, copy=False)
                array[offset:offset + n_sims, :, ci] = block
                del block
            else:  # stream through the file once, one sim at a time
                for s in range(var.sizes["sim"]):
                    _check_finite(_values(var.isel(sim=s), p), p, c, s, m)
        offset += n_sims
    return array
