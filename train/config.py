"""Training configuration: plain dataclasses, loadable from TOML, JSON-able for checkpoints.

A TOML file holds the top-level fields of :class:`TrainConfig`, a ``[model]`` table (the
model's registry name plus its constructor config) and a ``[split]`` table
(:class:`SplitConfig`); :data:`TOML_EXAMPLE` is one (``python -m train --help`` prints it).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surrogate.devices import DeviceError, check_device_name
from surrogate.records import ModelConfig, fits_type

__all__ = ["ConfigError", "SplitConfig", "TrainConfig", "load_config", "config_from_dict"]


#: a configuration file (the train CLI's help prints it; a test loads it)
TOML_EXAMPLE = """\
data = ["data/rotation.nc"]
out = "runs/rg"
epochs = 50
[model]
name = "relaxed_gconv_unet"
hidden = 32
depth = 4
breaking_inputs = ["cause"]   # any of frame, cause, coords
[split]
preset = "auto"          # "paper" ranges for 310-frame data, else fractions
heldout = "auto"         # dataset's `heldout` coordinate, else 30% of the sims
"""


class ConfigError(ValueError):
    """An invalid training configuration (unknown key, bad value)."""


@dataclass
class SplitConfig:
    """Which windows belong to which split (see :mod:`train.splits`).

    ``train``/``valid``/``test_future``/``test_domain``: half-open ranges of window start
    times; with ``units = "fraction"`` fractions of the usable time axis
    (``n_time - skip``), with ``units = "frames"`` frame offsets after ``skip``.

    ``preset``: ``"auto"`` (the paper's exact ranges when the data have the paper's 310
    frames, else the ranges given here), ``"paper"`` (always the paper's: skip 2, starts
    train 0-159, valid 160-199, test-future 200-249, test-domain 0-99) or ``"custom"``.

    ``heldout``: ``"auto"`` (the dataset's boolean ``heldout`` coordinate when present,
    else ``heldout_fraction`` of the simulations, evenly spread over the sim axis),
    ``"none"``, or an explicit list of sim indices (over the concatenated shards).
    """

    preset: str = "auto"
    units: str = "fraction"
    skip: int = 2
    train: tuple[float, float] = (0.0, 0.52)
    valid: tuple[float, float] = (0.52, 0.65)
    test_future: tuple[float, float] = (0.65, 0.81)
    test_domain: tuple[float, float] = (0.0, 0.33)
    heldout: str | list[int] = "auto"
    heldout_fraction: float = 0.3
    test_steps: int = 20
    valid_stride: int = 1

    def __post_init__(self) -> None:
        _check_scalar_types(self, "split.")
        if self.preset not in ("auto", "paper", "custom"):
            raise ConfigError(f"split.preset must be 'auto', 'paper' or 'custom', "
                              f"got {self.preset!r}")
        if self.units not in ("fraction", "frames"):
            raise ConfigError(f"split.units must be 'fraction' or 'frames', got {self.units!r}")
        for name in ("train", "valid", "test_future", "test_domain"):
            r = getattr(self, name)
            if not (isinstance(r, (list, tuple)) and len(r) == 2
                    and all(fits_type("float", x) for x in r) and r[0] <= r[1]):
                raise ConfigError(f"split.{name} must be a range [start, stop] of two "
                                  f"numbers, start <= stop, got {r!r}")
            setattr(self, name, tuple(r))
        if isinstance(self.heldout, (list, tuple)) and all(fits_type("int", i)
                                                           for i in self.heldout):
            self.heldout = [int(i) for i in self.heldout]
        elif self.heldout not in ("auto", "none"):
            raise ConfigError("split.heldout must be 'auto', 'none' or a list of sim "
                              f"indices (integers), got {self.heldout!r}")
        if not 0 <= self.heldout_fraction < 1:
            raise ConfigError("split.heldout_fraction must be in [0, 1)")
        if self.skip < 0 or self.test_steps < 1 or self.valid_stride < 1:
            raise ConfigError("split.skip >= 0, split.test_steps >= 1, split.valid_stride >= 1")


@dataclass
class TrainConfig:
    """Everything :func:`train.fit` needs; every field is also a CLI flag.

    The training recipe (defaults measured in ``docs/accuracy.md``):

    * ``targets``: ``"delta"`` predicts normalised one-step differences (their RMS,
      fitted on the train split, is :attr:`Normalization.delta_scale`; the loss is the
      MSE in those units); ``"state"`` the residual in normalised state units.
    * ``persistence_init``: zero the output head, so the untrained model is persistence.
    * ``noise``: std of Gaussian noise added to the input history during training, in
      units of the one-step change (i.i.d. per component: isotropic, commutes with
      rotations); 0 switches it off.
    * ``schedule``: ``"cosine"`` (linear warm-up over the ``warmup`` fraction of all
      optimiser steps, then cosine decay to 1% of ``lr``) or ``"step"`` (``lr_decay``
      every ``lr_step_epochs`` epochs).
    * ``ema``: decay of an exponential moving average of the weights, which is what is
      validated and saved (None: off).
    * ``curriculum``: grow the unrolled loss from 1 to ``K`` steps over the first half of
      the epochs.
    * ``loss_weights``: extra weight of a field in the loss, by channel name (both
      components of a vector field get one weight; unnamed channels weigh 1). With delta
      targets every field's normalised change counts alike, so a slowly changing field
      whose state-unit error matters (density) can be weighed up.
    * ``nonnegative``: record a lower bound of 0 (``Normalization.lower_bound``) for
      every scalar field never negative in the train split (density); the frames every
      forecast returns (:meth:`surrogate.Surrogate.rollout`, so ``evaluate`` too) are
      then bounded. Pointwise on scalars, so it keeps the model's symmetry. Training
      is not bounded (bounding inside the unrolled loss rolled out worse, docs/train.md).
    """

    data: list[str] = field(default_factory=list)
    out: str = "runs/train"
    model: str = "unet"
    model_config: dict[str, Any] = field(default_factory=dict)
    T_in: int = ModelConfig.T_in          # written once, in surrogate.records
    K: int = 6
    batch_size: int = 16
    epochs: int = 50
    lr: float = 1e-3
    weight_decay: float = 4e-4
    lr_decay: float = 0.95
    lr_step_epochs: int = 1
    grad_clip: float | None = 1.0
    patience: int | None = 10
    pushforward: bool = False
    targets: str = "delta"
    persistence_init: bool = True
    noise: float = 0.5
    schedule: str = "cosine"
    warmup: float = 0.05
    ema: float | None = None
    curriculum: bool = False
    loss_weights: dict[str, float] = field(default_factory=dict)
    nonnegative: bool = True
    valid_steps: int | None = None
    max_steps_per_epoch: int | None = None
    device: str = "auto"
    amp: str = "none"
    compile: bool = False
    num_workers: int = 0
    in_memory: str = "auto"
    max_memory_gb: float = 8.0
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        if isinstance(self.split, dict):
            self.split = _build(SplitConfig, self.split, "split")
        if isinstance(self.data, (str, Path)):
            self.data = [str(self.data)]
        self.data = [str(p) for p in self.data]
        self.out = str(self.out)
        self.model_config = dict(self.model_config)
        for k in ("name", "T_in"):
            if k in self.model_config:
                raise ConfigError(f"model config must not hold {k!r}: set it with "
                                  f"{'model' if k == 'name' else 'T_in'} instead")
        _check_scalar_types(self)
        if not isinstance(self.loss_weights, dict):
            raise ConfigError(f"loss_weights must be a table of channel name -> weight, "
                              f"got {self.loss_weights!r}")
        for k, w in self.loss_weights.items():
            if not fits_type("float", w) or not (0 < w < math.inf):
                raise ConfigError(f"loss_weights[{k!r}] must be a positive finite number, "
                                  f"got {w!r}")
        self.loss_weights = {str(k): float(w) for k, w in self.loss_weights.items()}
        checks = [
            (self.T_in >= 1, "T_in must be >= 1"),
            (self.K >= 1, "K must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 < self.lr_decay <= 1, "lr_decay must be in (0, 1]"),
            (self.lr_step_epochs >= 1, "lr_step_epochs must be >= 1"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip must be > 0 or unset"),
            (self.patience is None or self.patience >= 1, "patience must be >= 1 or unset"),
            (self.targets in ("delta", "state"), "targets must be 'delta' or 'state'"),
            (self.noise >= 0 and self.noise == self.noise, "noise must be >= 0"),
            (self.schedule in ("cosine", "step"), "schedule must be 'cosine' or 'step'"),
            (0 <= self.warmup < 1, "warmup must be in [0, 1) (a fraction of all steps)"),
            (self.ema is None or 0 < self.ema < 1, "ema must be in (0, 1) or unset"),
            (self.valid_steps is None or self.valid_steps >= 1, "valid_steps must be >= 1"),
            (self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
             "max_steps_per_epoch must be >= 1"),
            (self.amp in ("none", "bf16"), "amp must be 'none' or 'bf16'"),
            (self.in_memory in ("auto", "yes", "no"), "in_memory must be auto, yes or no"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (self.max_memory_gb > 0, "max_memory_gb must be > 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        try:
            check_device_name(self.device)
        except DeviceError as e:
            raise ConfigError(str(e)) from None

    @property
    def eval_steps(self) -> int:
        """Rollout length of the validation metric (``valid_steps``, default ``K``)."""
        return self.valid_steps if self.valid_steps is not None else self.K

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_scalar_types(cfg, prefix: str = "") -> None:
    """Each scalar field (annotated ``int``, ``float``, ``bool``, ``str``, optionally
    ``| None``) holds a value of that type, so that a TOML typo such as ``ema = "none"``
    gets an error naming the field (after ``prefix``, e.g. ``split.``) rather than a
    comparison failure."""
    for f in dataclasses.fields(cfg):
        ann = str(f.type).replace(" ", "")
        optional = ann.endswith("|None")
        base = ann.removesuffix("|None")
        v = getattr(cfg, f.name)
        if base in ("int", "float", "bool", "str") and not (v is None and optional) \
                and not fits_type(base, v):
            raise ConfigError(f"{prefix}{f.name} must be "
                              f"{'a number' if base == 'float' else base}"
                              f"{' or unset' if optional else ''}, got {v!r}")


def _build(cls, d: dict, where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown {where} key(s) {unknown}; known: {sorted(names)}")
    try:
        return cls(**d)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from e


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from a nested dict (TOML layout: ``model`` may be a table
    with ``name`` plus constructor keys, ``split`` a table)."""
    d = dict(d)
    model = d.get("model")
    if isinstance(model, dict):
        model = dict(model)
        if "name" not in model:
            raise ConfigError("the [model] table needs a 'name'")
        d["model"] = model.pop("name")
        d["model_config"] = {**model, **d.get("model_config", {})}
    return _build(TrainConfig, d, "config")


def load_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a TOML training config; keyword ``overrides`` win over the file. Relative
    ``data`` and ``out`` paths are taken relative to the current directory."""
    return config_from_dict(merge_overrides(read_toml(Path(path)), overrides))


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML file ``path`` as a dict; error messages name ``path`` as given."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


def merge_overrides(d: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overlay ``overrides`` on a TOML-layout dict: ``model`` (a name) replaces the name
    only, ``model_config``, ``split`` and ``loss_weights`` are merged key by key."""
    d = dict(d)
    for k, v in overrides.items():
        if k == "model" and isinstance(d.get("model"), dict) and isinstance(v, str):
            d["model"] = {**d["model"], "name": v}
        elif k in ("model_config", "split", "loss_weights") and isinstance(v, dict):
            d[k] = {**d.get(k, {}), **v}
        else:
            d[k] = v
    return d
