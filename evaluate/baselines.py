"""Reference forecasts every model is judged against.

:class:`Persistence` repeats the last given frame, ``x[t + s] = x[t]`` for every lead
step ``s``: the "nothing changes" forecast. A learned surrogate is only useful where it
beats it. It has the part of :class:`surrogate.Surrogate`'s interface that
:func:`evaluate.rollout.evaluate_split` uses, so it is scored by the same code, on the
same windows.
"""

from __future__ import annotations

from typing import Any

import torch

from surrogate.symmetry import FieldLayout

__all__ = ["Persistence", "PERSISTENCE_LABEL"]

PERSISTENCE_LABEL = "persistence"


class Persistence:
    """``(B, T, C, H, W)`` history -> ``(B, steps, C, H, W)`` copies of its last frame."""

    name = PERSISTENCE_LABEL
    aux_channels: tuple[str, ...] = ()

    def __init__(self, layout: FieldLayout, T_in: int = 1) -> None:
        self.layout = layout
        self.T_in = int(T_in)

    @torch.no_grad()
    def rollout(self, history: torch.Tensor, steps: int, aux: Any = None,
                batch_size: int = 64, exported: bool = True) -> torch.Tensor:
        if history.ndim != 5:
            raise ValueError(f"history must be (B, T, C, H, W), got {tuple(history.shape)}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        last = history[:, -1:].float()
        return last.expand(-1, steps, -1, -1, -1).clone()
