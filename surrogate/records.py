"""The typed records that cross a stage boundary, defined once: frozen dataclasses with
``to_dict`` / ``from_dict`` (which also reads the metadata of checkpoints older than
the records), so that no stage parses a raw metadata dict.

=================  ===============================  ==============================
record             written by                       read by
=================  ===============================  ==============================
``ModelConfig``    the user, TOML, the train CLI    ``build_model`` (registry)
``SplitRange``     ``train.splits.resolve_splits``  train loaders, evaluate windows
``Windows``        ``SplitRange.windows``           train loaders, evaluate rollouts
``SplitSpec``      ``train.splits.resolve_splits``  evaluate, benchmarks, ``--resume``
``DataRecord``     ``train.data.FieldData``         evaluate (training files), forecast
``TrainingRecord`` ``train.loop`` (checkpoint)      ``Surrogate``, evaluate, benchmarks
=================  ===============================  ==============================

A split is a set of windows ``(sim, start)`` (see :class:`Windows`, derived from a
``SplitRange``, never stored); sims index the dataset files concatenated in the order
training was given them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .symmetry import DEFAULT_LAYOUT, FieldLayout

__all__ = ["SPLIT_NAMES", "Windows", "SplitRange", "SplitSpec", "DataRecord",
           "TrainingRecord", "ModelConfig", "fits_type", "RecordError"]

SPLIT_NAMES = ("train", "valid", "test_future", "test_domain")

#: ``frames(sim, t0, t1)``: frames ``t0 .. t1-1`` of simulation ``sim``, ``(t1-t0, C, H, W)``
FrameReader = Callable[[int, int, int], np.ndarray]


class RecordError(ValueError):
    """Metadata with a field of the wrong type or a missing one (a crafted, damaged or
    foreign checkpoint); the message names the field, e.g. ``'splits.train.start'``."""


def _int(v: Any, name: str) -> int | None:
    """``v`` as an int (an integral float too), None for None (optional fields of older
    metadata); anything else: :class:`RecordError` naming field ``name``."""
    if v is None:
        return None
    if fits_type("int", v) or (isinstance(v, float) and v.is_integer()):
        return int(v)
    raise RecordError(f"metadata field {name!r} must be an integer, got {v!r}")


def _float(v: Any, name: str) -> float | None:
    if v is None:
        return None
    if fits_type("float", v):
        return float(v)
    raise RecordError(f"metadata field {name!r} must be a number, got {v!r}")


def _ints(v: Any, name: str) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)):
        raise RecordError(f"metadata field {name!r} must be a list of integers, got {v!r}")
    return tuple(_int(x, name) for x in v)


def _table(d: Any, name: str) -> dict:
    if not isinstance(d, dict):
        raise RecordError(f"metadata field {name!r} must be a table (JSON object), got "
                          f"{type(d).__name__}")
    return d


def _key(d: dict, key: str, name: str) -> Any:
    if key not in d:
        raise RecordError(f"metadata field '{name}.{key}' is missing")
    return d[key]


@dataclass(frozen=True, eq=False)
class Windows:
    """Windows ``(sims[i], starts[i])``, sim-major: window ``i`` feeds frames ``start ..
    start+T_in-1`` of its simulation to the model and compares the next ``steps``
    frames. Training reads them one at a time (``train.windows.WindowDataset``),
    evaluation in batches (:meth:`batches`), both through a :data:`FrameReader`."""

    sims: np.ndarray
    starts: np.ndarray
    T_in: int
    steps: int
    split: str = ""
    note: str = ""

    @classmethod
    def grid(cls, sims: Iterable[int], starts: Iterable[int], T_in: int, steps: int,
             split: str = "", note: str = "") -> "Windows":
        """Every start of every simulation."""
        sims, starts = np.asarray(list(sims), dtype=int), np.asarray(list(starts), dtype=int)
        return cls(np.repeat(sims, len(starts)), np.tile(starts, len(sims)), T_in, steps,
                   split, note)

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, int]], T_in: int, steps: int) -> "Windows":
        """The windows ``(sim, start)`` listed."""
        a = np.asarray(list(pairs), dtype=int).reshape(-1, 2)
        return cls(a[:, 0], a[:, 1], T_in, steps)

    def __len__(self) -> int:
        return len(self.sims)

    def __getitem__(self, i: int) -> tuple[int, int]:
        return int(self.sims[i]), int(self.starts[i])

    def subset(self, n: int | None) -> "Windows":
        """At most ``n`` windows, evenly spread over the split (all when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        idx = np.unique(np.linspace(0, len(self) - 1, n).round().astype(int))
        return dataclasses.replace(self, sims=self.sims[idx], starts=self.starts[idx])

    def spans(self) -> dict[int, tuple[int, int]]:
        """Per simulation (in window order) the frames ``[lo, hi)`` its windows read."""
        out: dict[int, tuple[int, int]] = {}
        for s, t in self:
            lo, hi = out.get(s, (t, t))
            out[s] = (min(lo, t), max(hi, t + self.T_in + self.steps))
        return out

    def read(self, i: int, frames: FrameReader) -> tuple[np.ndarray, np.ndarray]:
        """History ``(T_in, C, H, W)`` and target ``(steps, C, H, W)`` of window ``i``."""
        s, t = self[i]
        block = frames(s, t, t + self.T_in + self.steps)
        return block[: self.T_in], block[self.T_in:]

    def batches(self, frames: FrameReader, batch_size: int
                ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(index, history (b, T_in, C, H, W), target (b, steps, C, H, W))`` batches;
        each simulation's frames are read once (windows are ordered by simulation)."""
        spans, cache = self.spans(), {}

        def cached(s: int, t0: int, t1: int) -> np.ndarray:
            if s not in cache:
                cache.clear()  # keep one simulation in memory
                cache[s] = (spans[s][0], frames(s, *spans[s]))
            lo, block = cache[s]
            return block[t0 - lo:t1 - lo]

        for i0 in range(0, len(self), batch_size):
            idx = np.arange(i0, min(i0 + batch_size, len(self)))
            hist, targ = zip(*(self.read(i, cached) for i in idx))
            yield idx, np.stack(hist), np.stack(targ)


@dataclass(frozen=True)
class SplitRange:
    """Windows of ``sims`` x ``range(start, stop, stride)``, each with room for
    ``T_in + horizon`` frames."""

    sims: tuple[int, ...]
    start: int
    stop: int
    horizon: int
    stride: int = 1

    @property
    def starts(self) -> range:
        return range(self.start, self.stop, self.stride)

    def windows(self, T_in: int, split: str = "") -> Windows:
        """Every window, for a model of ``T_in`` input frames."""
        return Windows.grid(self.sims, self.starts, T_in, self.horizon, split)

    def __len__(self) -> int:
        return len(self.sims) * len(self.starts)

    def to_dict(self) -> dict[str, Any]:
        return {"sims": list(self.sims), "start": self.start, "stop": self.stop,
                "stride": self.stride, "horizon": self.horizon, "num_windows": len(self)}

    @classmethod
    def from_dict(cls, d: dict, name: str = "split") -> "SplitRange":
        """``name``: the field the errors name (:class:`RecordError`)."""
        d = _table(d, name)
        return cls(_ints(_key(d, "sims", name), f"{name}.sims"),
                   *(_int(_key(d, k, name), f"{name}.{k}")
                     for k in ("start", "stop", "horizon")),
                   _int(d.get("stride", 1), f"{name}.stride"))


@dataclass(frozen=True)
class SplitSpec:
    """The four splits of one training run, resolved for data of ``n_sims`` x
    ``n_time`` frames and a model of ``T_in`` input frames."""

    train: SplitRange
    valid: SplitRange
    test_future: SplitRange
    test_domain: SplitRange
    T_in: int
    n_time: int
    n_sims: int
    preset: str
    heldout_source: str
    config: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> SplitRange:
        if name not in SPLIT_NAMES:
            raise KeyError(name)
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        return {**{name: self[name].to_dict() for name in SPLIT_NAMES},
                "semantics": "window = (sim, start): inputs frames [start, start+T_in), "
                             "targets the next `horizon` frames; sims index the "
                             "concatenated files",
                "T_in": self.T_in, "n_time": self.n_time, "n_sims": self.n_sims,
                "preset": self.preset, "heldout_source": self.heldout_source,
                "config": self.config}

    @classmethod
    def from_dict(cls, d: dict, name: str = "splits") -> "SplitSpec":
        d = _table(d, name)
        return cls(**{n: SplitRange.from_dict(_key(d, n, name), f"{name}.{n}")
                      for n in SPLIT_NAMES},
                   **{k: _int(_key(d, k, name), f"{name}.{k}")
                      for k in ("T_in", "n_time", "n_sims")},
                   preset=d.get("preset", "custom"),
                   heldout_source=d.get("heldout_source", "unknown"),
                   config=d.get("config", {}))


@dataclass(frozen=True)
class DataRecord:
    """What a training run read: files (absolute paths, in order), their simulation
    counts, frames per simulation, variables, frame spacing and grid; the stored dtype of
    each variable and its ``[sum, sum of squares]`` over all values (float64), so that a
    resumed run can tell the same data under another path from other data."""

    files: tuple[str, ...] = ()
    sims_per_file: tuple[int, ...] = ()
    n_time: int | None = None
    channels: tuple[str, ...] = ()
    aux_channels: tuple[str, ...] = ()
    scenario: str | None = None
    dt: float | None = None
    grid: dict = field(default_factory=dict)   # ny, nx and the [first, last] of x, y, time
    sim_coords: dict = field(default_factory=dict)
    dtypes: dict = field(default_factory=dict)     # variable -> numpy dtype name
    moments: dict = field(default_factory=dict)    # variable -> [sum, sum of squares]

    @property
    def n_sims(self) -> int:
        return sum(self.sims_per_file)

    @property
    def shape(self) -> tuple[int, int] | None:
        """``(ny, nx)`` when recorded."""
        ny, nx = self.grid.get("ny"), self.grid.get("nx")
        return (int(ny), int(nx)) if ny is not None and nx is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"files": list(self.files), "sims_per_file": list(self.sims_per_file),
                "n_sims": self.n_sims, "n_time": self.n_time, "channels": list(self.channels),
                "aux_channels": list(self.aux_channels), "scenario": self.scenario,
                "dt": self.dt, "grid": dict(self.grid), "sim_coords": dict(self.sim_coords),
                "dtypes": dict(self.dtypes), "moments": dict(self.moments)}

    @classmethod
    def from_dict(cls, d: dict, name: str = "data") -> "DataRecord":
        d = _table(d, name)
        grid = d.get("grid") or {}
        if isinstance(grid, (list, tuple)) and len(grid) == 2:  # (ny, nx), hand-made
            grid = {"ny": grid[0], "nx": grid[1]}
        grid = dict(_table(grid, f"{name}.grid"))
        for k in ("ny", "nx"):
            if k in grid:
                grid[k] = _int(grid[k], f"{name}.grid.{k}")
        files = d.get("files")
        return cls(files=tuple(str(f) for f in files) if isinstance(files, list) else (),
                   sims_per_file=_ints(d.get("sims_per_file", ()), f"{name}.sims_per_file"),
                   n_time=_int(d.get("n_time"), f"{name}.n_time"),
                   channels=tuple(d.get("channels", ())),
                   aux_channels=tuple(d.get("aux_channels", ())),
                   scenario=d.get("scenario"),
                   dt=_float(d.get("dt"), f"{name}.dt"),
                   grid=grid, sim_coords=dict(d.get("sim_coords") or {}),
                   dtypes={str(k): str(v) for k, v in (d.get("dtypes") or {}).items()},
                   moments={str(k): [float(x) for x in v]
                            for k, v in (d.get("moments") or {}).items()})


#: the ``kind`` of a training run's metadata
TRAINING_KIND = "relaxflow.train"
_PROGRESS = ("epoch", "valid_rmse", "valid_loss", "best_valid_rmse", "best_epoch")


@dataclass(frozen=True)
class TrainingRecord:
    """What a checkpoint says about its training: model, history length, rollout
    lengths, field layout, breaking inputs, splits, data and the full training config
    (``train_config``, as :meth:`train.TrainConfig.to_dict` writes it). ``progress``
    holds the epoch's scores (epoch, valid_rmse, ...) of the checkpoint."""

    model: str | None = None
    T_in: int | None = None
    K: int | None = None
    valid_steps: int | None = None
    layout: FieldLayout | None = None
    breaking_inputs: tuple[str, ...] = ()
    aux_channels: tuple[str, ...] = ()
    splits: SplitSpec | None = None
    data: DataRecord = field(default_factory=DataRecord)
    model_config_requested: dict = field(default_factory=dict)
    train_config: dict = field(default_factory=dict)
    world_size: int = 1
    normalization_fitted_on: str = ""
    progress: dict = field(default_factory=dict)
    kind: str = TRAINING_KIND

    @property
    def grid(self) -> tuple[int, int] | None:
        """``(H, W)`` of the training data, when recorded."""
        return self.data.shape

    @property
    def dt(self) -> float | None:
        """Physical time between two frames of the training data, when recorded."""
        return self.data.dt

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.layout.channels) if self.layout is not None else self.data.channels

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint metadata (JSON-able)."""
        return {"kind": self.kind, "model": self.model,
                "model_config_requested": self.model_config_requested, "T_in": self.T_in,
                "K": self.K, "valid_steps": self.valid_steps,
                "layout": self.layout.to_dict() if self.layout is not None else None,
                "channels": list(self.channels), "breaking_inputs": list(self.breaking_inputs),
                "aux_channels": list(self.aux_channels),
                "splits": self.splits.to_dict() if self.splits is not None else None,
                "data": self.data.to_dict(), "train_config": self.train_config,
                "world_size": self.world_size,
                "normalization_fitted_on": self.normalization_fitted_on} | self.progress

    @classmethod
    def from_dict(cls, meta: dict | None) -> "TrainingRecord":
        """Read checkpoint metadata; keys a (hand-made or older) checkpoint lacks stay
        unset. A top-level ``grid`` / ``dt`` is read as the data's. A field of the wrong
        type: :class:`RecordError` naming it."""
        meta = dict(_table(meta or {}, "metadata"))
        data = dict(_table(meta.get("data") or {}, "data"))
        for k in ("grid", "dt"):
            if meta.get(k) is not None and data.get(k) is None:
                data[k] = meta[k]
        splits = meta.get("splits")
        try:
            layout = None if meta.get("layout") is None else FieldLayout.of(meta["layout"])
        except (TypeError, ValueError, KeyError) as e:
            raise RecordError(f"metadata field 'layout' is not a field layout "
                              f"({type(e).__name__}: {e})") from None
        return cls(
            model=meta.get("model"),
            T_in=_int(meta.get("T_in"), "T_in"),
            K=_int(meta.get("K"), "K"),
            valid_steps=_int(meta.get("valid_steps"), "valid_steps"),
            layout=layout,
            breaking_inputs=tuple(meta.get("breaking_inputs") or ()),
            aux_channels=tuple(meta.get("aux_channels") or ()),
            splits=SplitSpec.from_dict(splits) if isinstance(splits, dict) else None,
            data=DataRecord.from_dict(data),
            model_config_requested=dict(meta.get("model_config_requested") or {}),
            train_config=dict(meta.get("train_config") or {}),
            world_size=_int(meta.get("world_size", 1), "world_size"),
            normalization_fitted_on=str(meta.get("normalization_fitted_on", "")),
            progress={k: meta[k] for k in _PROGRESS if k in meta},
            kind=str(meta.get("kind", TRAINING_KIND)))


def _opt(default: Any, help: str, cli: bool = True) -> Any:
    """A :class:`ModelConfig` field: default, help line, whether train's CLI has a flag."""
    return field(default=default, metadata={"help": help, "cli": cli})


@dataclass(frozen=True)
class ModelConfig:
    """Every option of :func:`surrogate.build_model`, with its default. Options that do
    not apply to a model (``group`` for ``unet``, ``num_banks`` for all but the
    banked relaxed convolutions, ``relax_scale`` for all but ``relaxed_steer_unet``) are
    accepted and ignored, so one config drives every model."""

    T_in: int = _opt(10, "input frames", cli=False)   # a TrainConfig flag of its own
    hidden: int = _opt(16, "fields at the first U-Net level (doubles per level)")
    depth: int = _opt(4, "U-Net levels")
    kernel_size: int = _opt(3, "convolution kernel size")
    group: str = _opt("C4", "C4, D4 (C8 for steer models); ignored by unet")
    num_banks: int = _opt(2, "filter banks L (relaxed_gconv_unet; relaxed_steer_unet with "
                             "relax translation / both)")
    alpha: float = _opt(1e-5, "equivariance penalty weight (relaxed models)")
    relax_scale: float = _opt(1.0, "step scale of the per-position relaxation, "
                                   "w = w_bar + relax_scale * delta (relaxed_steer_unet)")
    layout: Any = _opt(DEFAULT_LAYOUT, "FieldLayout or {channels: [...], vectors: [[..]]}",
                       cli=False)
    residual: bool = _opt(True, "predict last frame + delta", cli=False)
    num_blocks: int = _opt(1, "residual blocks per level", cli=False)
    upsample: str = _opt("bilinear", "bilinear or nearest", cli=False)
    norm_groups: int = _opt(8, "GroupNorm groups", cli=False)
    exported: bool = _opt(False, "build, then .export() (to load exported checkpoints)",
                          cli=False)
    breaking_inputs: tuple = _opt((), "any of frame, cause, coords (surrogate.breaking)")
    relax: str = _opt("rotation", "what the relaxed weights depend on: rotation, "
                                  "translation or both (relaxed_gconv_unet, "
                                  "relaxed_steer_unet)")
    rpp_ratio: float = _opt(0.01, "prior of the equivariant path relative to the plain "
                                  "one (rpp_unet)")
    grid: Any = _opt(None, "(H, W) the position-dependent weights live on "
                           "(relaxed_conv_unet; training sets it from the data)", cli=False)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """``{option: default}``."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def cli_options(cls) -> list[tuple[str, Any, str]]:
        """``(name, default, help)`` of the options the train CLI offers as flags."""
        return [(f.name, f.default, f.metadata["help"]) for f in dataclasses.fields(cls)
                if f.metadata.get("cli")]


def fits_type(kind: str, v: Any) -> bool:
    """Whether ``v`` is a value of the plain config type ``kind`` (``"bool"``, ``"int"``,
    ``"float"``, ``"str"``) for ``build_model``'s options and train's config: a bool is
    only a bool, an int is also a float (TOML ``lr = 1``). (``simulate`` keeps its own
    spec checks: it does not import ``surrogate``.)"""
    if kind == "bool":
        return isinstance(v, bool)
    types = {"int": int, "float": (int, float), "str": str}[kind]
    return isinstance(v, types) and not isinstance(v, bool)
