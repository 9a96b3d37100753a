"""Exponential moving average of a model's weights (Polyak averaging).

``theta_ema <- d theta_ema + (1 - d) theta`` after every optimiser step, with the usual
warm-up ``d = min(decay, (1 + n) / (10 + n))`` so the average is not dominated by the
random initial weights; buffers (e.g. the residual's ``delta_scale``) are copied. The
average is what training validates and saves; the raw weights travel in the resume
state.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """A shadow copy :attr:`module` of ``model`` averaged with ``decay`` in (0, 1)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Average the current weights of ``model`` into :attr:`module`."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for p_ema, p in zip(self.module.parameters(), model.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - d)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)
