"""Paper-style data splits, resolved to concrete sim indices and sample-start ranges.

A split is a set of windows ``(sim, start)``; the window starting at frame ``start``
feeds frames ``start .. start+T_in-1`` to the model and compares the next ``horizon``
frames. As in the paper (Wang et al. 2022), splits are defined by sample-start times:

* ``train``       - early start times of the training simulations,
* ``valid``       - later start times of the same simulations (early stopping),
* ``test_future`` - still later start times of the same simulations,
* ``test_domain`` - early start times of the held-out simulations.

A window is identified by its start, so a train window that starts near the end of the
train range reads up to ``T_in + K - 1`` frames into the valid range, exactly as in the
paper's reference code.

The resolved spec (:meth:`SplitSpec.to_dict`) is self-sufficient JSON recorded in every
checkpoint's metadata under ``"splits"``: per split the sim indices (over the
concatenated shard files, in the order given), the half-open range ``[start, stop)`` of
absolute start frames and the rollout ``horizon`` those starts leave room for. Readers
(evaluate, forecast) need nothing from this module to use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .config import SplitConfig

__all__ = ["SplitRange", "SplitSpec", "resolve_splits", "PAPER_FRAMES", "PAPER_N_TIME",
           "SplitError", "default_heldout"]

SPLIT_NAMES = ("train", "valid", "test_future", "test_domain")
#: The paper's reference ranges: sample starts after skipping the first 2 frames.
PAPER_SKIP = 2
PAPER_FRAMES = {"train": (0, 160), "valid": (160, 200), "test_future": (200, 250),
                "test_domain": (0, 100)}
PAPER_N_TIME = 310


class SplitError(ValueError):
    """The data cannot hold the requested splits."""


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

    def windows(self) -> list[tuple[int, int]]:
        return [(s, t) for s in self.sims for t in self.starts]

    def __len__(self) -> int:
        return len(self.sims) * len(self.starts)

    def to_dict(self) -> dict[str, Any]:
        return {"sims": list(self.sims), "start": self.start, "stop": self.stop,
                "stride": self.stride, "horizon": self.horizon, "num_windows": len(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "SplitRange":
        return cls(tuple(d["sims"]), int(d["start"]), int(d["stop"]), int(d["horizon"]),
                   int(d.get("stride", 1)))


@dataclass(frozen=True)
class SplitSpec:
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
        d: dict[str, Any] = {name: self[name].to_dict() for name in SPLIT_NAMES}
        d.update({
            "semantics": "window = (sim, start): inputs frames [start, start+T_in), targets "
                         "the next `horizon` frames; sims index the concatenated files",
            "T_in": self.T_in, "n_time": self.n_time, "n_sims": self.n_sims,
            "preset": self.preset, "heldout_source": self.heldout_source,
            "config": self.config,
        })
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SplitSpec":
        return cls(**{n: SplitRange.from_dict(d[n]) for n in SPLIT_NAMES},
                   T_in=int(d["T_in"]), n_time=int(d["n_time"]), n_sims=int(d["n_sims"]),
                   preset=d["preset"], heldout_source=d["heldout_source"],
                   config=d.get("config", {}))


def default_heldout(n_sims: int, fraction: float) -> list[int]:
    """``floor(fraction * n_sims)`` sims spread evenly over the interior of the sim axis
    (never all of them: at least one training sim is kept)."""
    n = min(int(np.floor(fraction * n_sims)), n_sims - 1)
    if n <= 0:
        return []
    return sorted({int(i) for i in np.linspace(0, n_sims - 1, n + 2)[1:-1].round()})


def resolve_splits(cfg: SplitConfig, *, n_time: int, n_sims: int, T_in: int, K: int,
                   valid_steps: int, heldout_coord: Sequence[bool] | None = None) -> SplitSpec:
    """Turn a :class:`SplitConfig` into concrete windows for data of ``n_sims`` x
    ``n_time`` frames. Raises :class:`SplitError` when train or valid would be empty."""
    preset = cfg.preset
    if preset == "auto":
        preset = "paper" if n_time == PAPER_N_TIME else "custom"
    if preset == "paper":
        skip, units, ranges = PAPER_SKIP, "frames", dict(PAPER_FRAMES)
    else:
        skip, units = cfg.skip, cfg.units
        ranges = {n: getattr(cfg, n) for n in SPLIT_NAMES}

    # --- simulations ---------------------------------------------------------------
    if isinstance(cfg.heldout, list):
        bad = [i for i in cfg.heldout if not 0 <= i < n_sims]
        if bad:
            raise SplitError(f"held-out sim indices {bad} out of range (data has {n_sims} sims)")
        held, source = sorted(set(cfg.heldout)), "explicit"
    elif cfg.heldout == "none":
        held, source = [], "none"
    elif heldout_coord is not None:
        held = [i for i, h in enumerate(np.asarray(heldout_coord, bool)) if h]
        source = "dataset coordinate 'heldout'"
    else:
        held = default_heldout(n_sims, cfg.heldout_fraction)
        source = f"default: {cfg.heldout_fraction:g} of the sims, evenly spread"
    train_sims = tuple(i for i in range(n_sims) if i not in set(held))
    if not train_sims:
        raise SplitError("every simulation is held out: no training simulations left")

    # --- times ---------------------------------------------------------------------
    usable = n_time - skip
    if usable < T_in + K:
        raise SplitError(f"{n_time} time steps (minus skip {skip}) are too few for "
                         f"T_in + K = {T_in} + {K} = {T_in + K}")

    def to_frames(r: tuple[float, float]) -> tuple[int, int]:
        if units == "fraction":
            a, b = (skip + int(round(x * usable)) for x in r)
        else:
            a, b = (skip + int(x) for x in r)
        return max(a, skip), min(b, n_time)

    def fit_range(name: str, sims, horizon: int, shrink: bool, stride: int = 1) -> SplitRange:
        a, b = to_frames(ranges[name])
        if shrink:  # test splits: shorten the rollout rather than drop every window
            horizon = max(0, min(horizon, n_time - a - T_in))
        b = min(b, n_time - T_in - horizon + 1)
        if horizon < 1 or b <= a or not sims:
            return SplitRange(tuple(sims), a, a, max(horizon, 0), stride)
        return SplitRange(tuple(sims), a, b, horizon, stride)

    spec = SplitSpec(
        train=fit_range("train", train_sims, K, False),
        valid=fit_range("valid", train_sims, max(K, valid_steps), False, cfg.valid_stride),
        test_future=fit_range("test_future", train_sims, cfg.test_steps, True),
        test_domain=fit_range("test_domain", tuple(held), cfg.test_steps, True),
        T_in=T_in, n_time=n_time, n_sims=n_sims, preset=preset, heldout_source=source,
        config={"skip": skip, "units": units, "ranges": {k: list(v) for k, v in ranges.items()},
                "heldout": cfg.heldout, "test_steps": cfg.test_steps},
    )
    for name, h in (("train", K), ("valid", max(K, valid_steps))):
        if len(spec[name]) == 0:
            a, b = to_frames(ranges[name])
            raise SplitError(
                f"the {name} split is empty: start frames [{a}, {b}) of {n_time} leave no "
                f"room for T_in + {h} = {T_in + h} frames; use longer simulations, a "
                f"smaller T_in/K/valid_steps or other split ranges")
    return spec
