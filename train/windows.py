"""Torch datasets of (history, future) windows cut from a :class:`train.data.FieldData`.

Windows are returned in physical units; normalisation happens on the batch, on the
device, through one function for every split (:func:`train.normalize.normalize_batch`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .data import FieldData
from .splits import SplitRange

__all__ = ["WindowDataset"]


class WindowDataset(Dataset):
    """Item ``i``: ``(x, y)`` with ``x`` of shape ``(T_in, C, H, W)`` (frames
    ``start .. start+T_in-1``) and ``y`` of shape ``(horizon, C, H, W)`` (the next
    ``horizon`` frames), for the ``i``-th ``(sim, start)`` window; ``(x, y, aux)`` when
    the data hold static aux fields, ``aux`` ``(C_aux, H, W)`` those of the window's
    simulation."""

    def __init__(self, data: FieldData, windows: Sequence[tuple[int, int]], T_in: int,
                 horizon: int):
        self.data = data
        self.windows = list(windows)
        self.T_in = T_in
        self.horizon = horizon
        for s, t in self.windows:
            if not (0 <= s < data.n_sims and 0 <= t and t + T_in + horizon <= data.n_time):
                raise IndexError(f"window (sim {s}, start {t}) does not fit the data "
                                 f"({data.n_sims} sims x {data.n_time} frames)")

    @classmethod
    def from_split(cls, data: FieldData, split: SplitRange, T_in: int) -> "WindowDataset":
        return cls(data, split.windows(), T_in, split.horizon)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        s, t = self.windows[i]
        block = np.ascontiguousarray(self.data.frames(s, t, t + self.T_in + self.horizon))
        block = torch.from_numpy(block)
        if self.data.aux is None:
            return block[: self.T_in], block[self.T_in:]
        return block[: self.T_in], block[self.T_in:], torch.from_numpy(self.data.aux[s])
