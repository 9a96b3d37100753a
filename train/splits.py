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

The resolved spec (:class:`surrogate.records.SplitSpec`, defined once at the ground floor
so that every stage reads the same record) is recorded in every checkpoint's metadata
under ``"splits"``: per split the sim indices (over the concatenated shard files, in
the order given), the half-open range ``[start, stop)`` of absolute start frames and
the rollout ``horizon`` those starts leave room for.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from surrogate.records import SPLIT_NAMES, SplitRange, SplitSpec

from .config import SplitConfig

__all__ = ["SplitRange", "SplitSpec", "resolve_splits", "PAPER_FRAMES", "PAPER_N_TIME",
           "SplitError", "default_heldout", "min_frames"]

#: The paper's reference ranges: sample starts after skipping the first 2 frames.
PAPER_SKIP = 2
PAPER_FRAMES = {"train": (0, 160), "valid": (160, 200), "test_future": (200, 250),
                "test_domain": (0, 100)}
PAPER_N_TIME = 310


class SplitError(ValueError):
    """The data cannot hold the requested splits."""


def default_heldout(n_sims: int, fraction: float) -> list[int]:
    """``floor(fraction * n_sims)`` sims spread evenly over the interior of the sim axis
    (never all of them: at least one training sim is kept)."""
    n = min(int(np.floor(fraction * n_sims)), n_sims - 1)
    if n <= 0:
        return []
    return sorted({int(i) for i in np.linspace(0, n_sims - 1, n + 2)[1:-1].round()})


def _held_out(cfg: SplitConfig, n_sims: int, heldout_coord: Sequence[bool] | None
              ) -> tuple[list[int], str]:
    """The held-out (test-domain) simulations and where the choice came from."""
    if isinstance(cfg.heldout, list):
        bad = [i for i in cfg.heldout if not 0 <= i < n_sims]
        if bad:
            raise SplitError(f"held-out sim indices {bad} out of range (data has {n_sims} sims)")
        return sorted(set(cfg.heldout)), "explicit"
    if cfg.heldout == "none":
        return [], "none"
    if heldout_coord is not None:
        return ([i for i, h in enumerate(np.asarray(heldout_coord, bool)) if h],
                "dataset coordinate 'heldout'")
    return (default_heldout(n_sims, cfg.heldout_fraction),
            f"default: {cfg.heldout_fraction:g} of the sims, evenly spread")


def resolve_splits(cfg: SplitConfig, *, n_time: int, n_sims: int, T_in: int, K: int,
                   valid_steps: int, heldout_coord: Sequence[bool] | None = None) -> SplitSpec:
    """Turn a :class:`SplitConfig` into concrete windows for data of ``n_sims`` x
    ``n_time`` frames. Raises :class:`SplitError` when train or valid would be empty."""
    preset = cfg.preset if cfg.preset != "auto" else (
        "paper" if n_time == PAPER_N_TIME else "custom")
    if preset == "paper":
        skip, units, ranges = PAPER_SKIP, "frames", dict(PAPER_FRAMES)
    else:
        skip, units = cfg.skip, cfg.units
        ranges = {n: getattr(cfg, n) for n in SPLIT_NAMES}

    held, source = _held_out(cfg, n_sims, heldout_coord)
    train_sims = tuple(i for i in range(n_sims) if i not in set(held))
    if not train_sims:
        raise SplitError("every simulation is held out: no training simulations left")

    usable = n_time - skip
    if usable < T_in + K:
        raise SplitError(f"{n_time} time steps (minus skip {skip}) are too few for "
                         f"T_in + K = {T_in} + {K} = {T_in + K}")

    def to_frames(r: tuple[float, float]) -> tuple[int, int]:
        a, b = (skip + (int(round(x * usable)) if units == "fraction" else int(x)) for x in r)
        return max(a, skip), min(b, n_time)

    def fit_range(name: str, sims, horizon: int, shrink: bool, stride: int = 1) -> SplitRange:
        a, b = to_frames(ranges[name])
        if shrink:  # test splits: shorten the rollout rather than drop every window
            horizon = max(0, min(horizon, n_time - a - T_in))
        b = min(b, n_time - T_in - horizon + 1)
        empty = horizon < 1 or b <= a or not sims
        return SplitRange(tuple(sims), a, a if empty else b, max(horizon, 0), stride)

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


#: the longest simulation :func:`min_frames` tries
MAX_FRAMES = 1_000_000


def min_frames(cfg: SplitConfig, *, T_in: int, K: int, valid_steps: int) -> int | None:
    """The fewest frames per simulation for which :func:`resolve_splits` gives non-empty
    train and valid splits (None: no length up to :data:`MAX_FRAMES` does; the
    split ranges themselves are empty). Which simulations are held out plays no part."""
    probe = dataclasses.replace(cfg, heldout="none")

    def fits(n: int) -> bool:
        try:
            resolve_splits(probe, n_time=n, n_sims=1, T_in=T_in, K=K,
                           valid_steps=valid_steps)
        except SplitError:
            return False
        return True

    n = T_in + K + min(cfg.skip, PAPER_SKIP)
    hi = n
    while not fits(hi):   # a length that fits, doubling (each try is arithmetic only)
        if hi >= MAX_FRAMES:
            return None
        hi = min(2 * hi, MAX_FRAMES)
    while n < hi and not fits(n):   # the first one: lengths need not fit monotonically
        n += 1
    return n
