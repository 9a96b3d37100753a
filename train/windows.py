"""The torch ``Dataset`` over :class:`surrogate.records.Windows` cut from a
:class:`train.data.FieldData`.

Windows are returned in physical units; normalisation happens on the batch, on the
device, through one function for every split (:func:`train.normalize.normalize_batch`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from surrogate.records import SplitRange, Windows

from .data import FieldData

__all__ = ["WindowDataset"]


class WindowDataset(Dataset):
    """Item ``i``: ``(x, y)`` with ``x`` of shape ``(T_in, C, H, W)`` (frames
    ``start .. start+T_in-1``) and ``y`` of shape ``(horizon, C, H, W)`` (the next
    ``horizon`` frames), for window ``i`` (``windows``: a :class:`Windows`, or
    ``(sim, start)`` pairs with ``T_in`` and ``horizon``); ``(x, y, aux)`` when the data
    hold static aux fields, ``aux`` ``(C_aux, H, W)`` those of the window's simulation."""

    def __init__(self, data: FieldData, windows: Windows | Sequence[tuple[int, int]],
                 T_in: int | None = None, horizon: int | None = None):
        if not isinstance(windows, Windows):
            windows = Windows.of(windows, T_in, horizon)
        self.data, self.windows = data, windows
        for s, t in windows:
            if not (0 <= s < data.n_sims and 0 <= t and
                    t + windows.T_in + windows.steps <= data.n_time):
                raise IndexError(f"window (sim {s}, start {t}) does not fit the data "
                                 f"({data.n_sims} sims x {data.n_time} frames)")

    @classmethod
    def from_split(cls, data: FieldData, split: SplitRange, T_in: int) -> "WindowDataset":
        return cls(data, split.windows(T_in))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        x, y = (torch.from_numpy(np.ascontiguousarray(a))
                for a in self.windows.read(i, self.data.frames))
        if self.data.aux is None:
            return x, y
        return x, y, torch.from_numpy(self.data.aux[self.windows[i][0]])
