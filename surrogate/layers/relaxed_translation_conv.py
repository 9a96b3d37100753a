"""Relaxed translation group convolution (Wang, Walters & Yu, ICML 2022, Sec. 4.1 for
G = Z^2): combination weights that vary with position,

    y(x) = sum_l w_l(x) [f * Psi_l](x),

with ``L`` plain filter banks ``Psi_l`` (drawn as :func:`bank_std` says) and weights
``w`` of shape ``(L, H, W)`` on the grid the layer runs on (another grid is refused).
When ``w_l(x)`` does not depend on ``x`` the layer is an ordinary convolution with the
kernel ``sum_l w_l Psi_l``: ``w`` starts at ``1/L``, so the layer starts exactly
translation-equivariant. The paper's smoothness penalty is zero exactly then. The
pieces every position-dependent layer shares are in :mod:`.position_mixing`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..groups import Group
from .position_mixing import (PositionMixing, bank_std, check_plain, level_grid,
                              smoothness_penalty)

__all__ = ["RelaxedTranslationConv"]


class RelaxedTranslationConv(PositionMixing):
    """Relaxed translation convolution on plain fields (trivial group only).

    Parameters ``weight`` (``Psi``, shape ``(L, F_out, F_in, k, k)``),
    ``relaxed_weights`` (``w``, shape ``(L, H, W)``) and a per-field bias."""

    def __init__(self, group: Group, in_fields: int, out_fields: int, kernel_size: int = 3,
                 bias: bool = True, num_banks: int = 2,
                 grid: tuple[int, int] | None = None) -> None:
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        check_plain(group, "the relaxed translation convolution")
        k = kernel_size
        std = bank_std(num_banks, in_fields * k * k)
        self.num_banks = num_banks
        self.grid = level_grid(grid, "the relaxed translation convolution")
        self.weight = nn.Parameter(torch.randn(num_banks, out_fields, in_fields, k, k) * std)
        self.relaxed_weights = nn.Parameter(torch.full((num_banks, *self.grid),
                                                       1.0 / num_banks))

    def _banks(self) -> torch.Tensor:
        return self.weight

    def _name(self) -> str:
        return type(self).__name__

    def equivariance_penalty(self) -> torch.Tensor:
        """``mean |w(x+e_x) - w(x)| + mean |w(x+e_y) - w(x)|`` (raw, no ``alpha``)."""
        return smoothness_penalty(self.relaxed_weights)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_banks={self.num_banks}, grid={self.grid}"
