"""Relaxed group convolution (Wang, Walters & Yu, ICML 2022) on regular fields.

    [f *~ Psi](g) = sum_h sum_l w_l(g) f(h) Psi_l(g^-1 h)

``L`` free filter banks ``Psi_l`` (each a :class:`GroupConv` filter, shape
``(F_out, F_in, |G|, k, k)``) are moved by every output element ``g`` exactly as in the
strict group convolution and mixed with combination weights ``w`` of shape ``(L, |G|)``
that depend on the output element ``g``. The expanded kernel is

    W[o, g, i, h, y] = sum_l w_l(g) Psi_l[o, i, g^-1 h, g^-1 y].

When ``w_l(g)`` does not depend on ``g`` the layer is a strict group convolution (with
filter ``sum_l w_l Psi_l``), so it is exactly equivariant; ``w`` starts at ``1/L`` for
every ``(l, g)`` (the paper's reference code averages the banks), and the banks are
drawn as :func:`~surrogate.layers.position_mixing.bank_std` says (their mean
has :class:`GroupConv`'s He scale).

Roto-translation relaxation (``relax``): ``"rotation"`` (default) is the layer above;
``"translation"`` makes the weights depend on position only, ``w_l(x)`` ``(L, H, W)``;
``"both"`` on the group element and the position, ``w_l(g, x)`` ``(L, |G|, H, W)``
(relaxed over p4 = C4 x| Z^2, or D4 x| Z^2), the layer then being tied to its ``grid``:

    [f *~ Psi](g, x) = sum_l w_l(g, x) [f * Psi_l](g, x).
"""

from __future__ import annotations

import torch
from torch import nn

from ..groups import Group
from .group_conv import check_grid_group, expand_group_filter, group_filter_index
from .position_mixing import (PositionMixing, bank_std, check_relax, level_grid,
                                       smoothness_penalty)

__all__ = ["RelaxedGroupConv"]


class RelaxedGroupConv(PositionMixing):
    """Relaxed group convolution on regular fields (C4, D4, trivial).

    Parameters ``weight`` (``Psi``, shape ``(L, F_out, F_in, |G|, k, k)``),
    ``relaxed_weights`` (``w``, shape ``(L, |G|)``) and a per-field bias.
    """

    def __init__(self, group: Group, in_fields: int, out_fields: int, kernel_size: int = 3,
                 bias: bool = True, num_banks: int = 2, relax: str = "rotation",
                 grid: tuple[int, int] | None = None) -> None:
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        check_grid_group(group, type(self).__name__)
        n, k = group.order, kernel_size
        std = bank_std(num_banks, in_fields * n * k * k)
        check_relax(relax)
        self.num_banks, self.relax = num_banks, relax
        self.weight = nn.Parameter(torch.randn(num_banks, out_fields, in_fields, n, k, k) * std)
        shape: tuple[int, ...] = (n,)
        if relax != "rotation":
            self.grid = level_grid(grid, f"relax={relax!r}", "the layer's level")
            shape = self.grid if relax == "translation" else (n, *self.grid)
        self.relaxed_weights = nn.Parameter(torch.full((num_banks, *shape), 1.0 / num_banks))
        self.register_buffer("filter_index", group_filter_index(group, k), persistent=False)

    def expand_filter(self) -> torch.Tensor:
        """The kernel; with position-dependent weights, that of their mean over the grid
        (the layer itself then mixes ``L`` strict convolutions, see :meth:`forward`)."""
        n, k = self.group.order, self.kernel_size
        banks = expand_group_filter(self.weight, self.filter_index, n)  # (L, Fo, G, Fi, G, k, k)
        w = self.relaxed_weights
        if self.relax == "translation":  # (L, H, W): the mean over the grid, per bank
            w = w.mean(dim=(1, 2))[:, None].expand(-1, n)
        elif self.relax == "both":  # (L, |G|, H, W): the mean over the grid
            w = w.mean(dim=(2, 3))
        w = torch.einsum("lg,logihyx->ogihyx", w.to(banks.dtype), banks)
        return w.reshape(self.out_fields * n, self.in_fields * n, k, k)

    def _banks(self) -> torch.Tensor:
        """The ``L`` strict kernels, ``(L, F_out|G|, F_in|G|, k, k)``."""
        n, k = self.group.order, self.kernel_size
        banks = expand_group_filter(self.weight, self.filter_index, n)
        return banks.reshape(self.num_banks, self.out_fields * n, self.in_fields * n, k, k)

    def equivariance_penalty(self) -> torch.Tensor:
        """The paper's ``sum_l sum_{g,h} |w_l(g) - w_l(h)|`` (raw, ordered pairs, no
        ``alpha``; zero iff ``w`` is constant over ``g``); with position-dependent weights
        the pair term is averaged over positions and their smoothness is added."""
        w = self.relaxed_weights
        if self.relax == "rotation":
            return (w[:, :, None] - w[:, None, :]).abs().sum()
        smooth = smoothness_penalty(w)
        if self.relax == "translation":
            return smooth
        pairs = (w[:, :, None] - w[:, None, :]).abs().sum(dim=(0, 1, 2)).mean()
        return pairs + smooth

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_banks={self.num_banks}, relax={self.relax!r}"
