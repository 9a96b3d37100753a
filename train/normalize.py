"""Normalisation for training: fitted on the train split only, applied by one code path.

Statistics come from :class:`surrogate.normalization.Normalization` (a vector field gets
one scale for both components and no shift; scalars get mean and standard deviation),
fitted on the frames the train windows cover and stored in every checkpoint. Every
split and every forecast is normalised by that object (:func:`normalize_batch`). The
static aux fields of a ``cause`` breaking input get their own normalisation
(:func:`surrogate.breaking.fit_aux_normalization`), kept in ``Normalization.aux``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from surrogate.breaking import fit_aux_normalization
from surrogate.normalization import Normalization
from surrogate.symmetry import FieldLayout

from .data import FieldData
from .splits import SplitRange

__all__ = ["fit_normalization", "fit_delta_scale", "fit_aux", "fit_lower_bound",
           "normalize_batch", "train_frames"]


def train_frames(split: SplitRange, T_in: int) -> list[tuple[int, int]]:
    """``(sim, frame)`` pairs covered by the windows of ``split``."""
    return [(s, t) for s, (lo, hi) in split.windows(T_in).spans().items()
            for t in range(lo, hi)]


def fit_delta_scale(data: FieldData, split: SplitRange, T_in: int,
                    layout: FieldLayout) -> tuple[float, ...]:
    """RMS of ``x[t+1] - x[t]`` over consecutive frames of the train split, per channel
    (one value per vector field; see :meth:`Normalization.fit_delta_scale`), streamed
    one simulation at a time."""
    sums = np.zeros(len(layout.channels))
    count = 0
    for s, (lo, hi) in split.windows(T_in).spans().items():
        d = np.diff(data.frames(s, lo, hi).astype(np.float64), axis=0)
        sums += (d ** 2).sum(axis=(0, 2, 3))
        count += d.shape[0] * d.shape[2] * d.shape[3]
    return Normalization.delta_scale_from_mean_squares(sums / max(count, 1), layout)


def fit_normalization(data: FieldData, split: SplitRange, T_in: int, layout: FieldLayout,
                      max_bytes: int = 2**30) -> Normalization:
    """Fit on the frames of the train split; when they exceed ``max_bytes`` (as float64)
    an evenly spaced subset of frames is used."""
    frames = train_frames(split, T_in)
    per_frame = len(layout.channels) * data.ny * data.nx * 8
    n_max = max(1, max_bytes // per_frame)
    if len(frames) > n_max:
        idx = np.linspace(0, len(frames) - 1, n_max).round().astype(int)
        frames = [frames[i] for i in sorted(set(idx))]
    if data.in_memory:
        sims, times = np.array(frames).T
        block = data.array[sims, times]
    else:
        block = np.stack([data.frames(s, t, t + 1)[0] for s, t in frames])
    return Normalization.fit(block, layout, channel_dim=1)


def fit_lower_bound(data: FieldData, split: SplitRange, T_in: int,
                    layout: FieldLayout) -> tuple[float, ...]:
    """Per channel, in physical units: 0 for a scalar field that is never negative on
    the frames of the train split, ``-inf`` otherwise (vector fields always: a bound on
    a component would not commute with rotations)."""
    lowest = np.full(layout.num_channels, np.inf)
    for s, (lo, hi) in split.windows(T_in).spans().items():
        lowest = np.minimum(lowest, data.frames(s, lo, hi).min(axis=(0, 2, 3)))
    scalars = set(layout.scalar_indices)
    return tuple(0.0 if i in scalars and low >= 0 else -math.inf
                 for i, low in enumerate(lowest))


def normalize_batch(norm: Normalization, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Physical -> network units for ``(B, T, C, H, W)`` tensors: the one path for all
    splits."""
    return tuple(norm.normalize(t, channel_dim=-3) for t in tensors)


def fit_aux(data: FieldData, split: SplitRange, layout: FieldLayout) -> Normalization:
    """Normalisation of the data's static aux fields (``layout``: their channels), fitted
    on the simulations of the train split."""
    if data.aux is None or tuple(layout.channels) != tuple(data.aux_channels):
        raise ValueError(f"the data hold aux fields {list(data.aux_channels)}, the model "
                         f"needs {list(layout.channels)}")
    return fit_aux_normalization(data.aux[sorted(set(split.sims))], layout, channel_dim=1)

