"""Relaxed group convolution (Wang, Walters & Yu, ICML 2022) on regular fields.

    [f *~ Psi](g) = sum_h sum_l w_l(g) f(h) Psi_l(g^-1 h)

``L`` free filter banks ``Psi_l`` (each a :class:`GroupConv` filter, shape
``(F_out, F_in, |G|, k, k)``) are moved by every output element ``g`` exactly as in the
strict group convolution and mixed with combination weights ``w`` of shape ``(L, |G|)``
that depend on the output element ``g``. The expanded kernel is

    W[o, g, i, h, y] = sum_l w_l(g) Psi_l[o, i, g^-1 h, g^-1 y].

When ``w_l(g)`` does not depend on ``g`` the layer is a strict group convolution (with
filter ``sum_l w_l Psi_l``), so it is exactly equivariant.

Design choices
--------------
* ``w`` starts at ``1/L`` for every ``(l, g)`` (as in the paper's reference code: the
  banks are averaged), so the layer is exactly equivariant at initialisation.
* Each bank is drawn with standard deviation ``sqrt(L) * sqrt(2 / fan_in)``
  (``fan_in = F_in |G| k^2``) so that the initial effective filter ``mean_l Psi_l`` has
  He (Kaiming) scale, the same as :class:`GroupConv`.
* :meth:`equivariance_penalty` is the paper's raw ``sum_l sum_{g,h} |w_l(g) - w_l(h)|``
  over all *ordered* pairs ``(g, h)`` (each unordered pair counts twice), without any
  normalisation or the weight ``alpha`` (the network applies ``alpha``). It is zero
  exactly when ``w`` is constant over ``g``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..groups import Group
from .group_conv import check_grid_group, expand_group_filter, group_filter_index, kaiming_std
from .regular import RegularConv

__all__ = ["RelaxedGroupConv"]


class RelaxedGroupConv(RegularConv):
    """Relaxed group convolution on regular fields (C4, D4, trivial).

    Parameters ``weight`` (``Psi``, shape ``(L, F_out, F_in, |G|, k, k)``),
    ``relaxed_weights`` (``w``, shape ``(L, |G|)``) and a per-field bias.
    """

    def __init__(self, group: Group, in_fields: int, out_fields: int, kernel_size: int = 3,
                 bias: bool = True, num_banks: int = 2) -> None:
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        check_grid_group(group, type(self).__name__)
        if num_banks < 1:
            raise ValueError(f"num_banks must be >= 1, got {num_banks}")
        n, k = group.order, kernel_size
        self.num_banks = num_banks
        std = math.sqrt(num_banks) * kaiming_std(in_fields * n * k * k)
        self.weight = nn.Parameter(torch.randn(num_banks, out_fields, in_fields, n, k, k) * std)
        self.relaxed_weights = nn.Parameter(torch.full((num_banks, n), 1.0 / num_banks))
        self.register_buffer("filter_index", group_filter_index(group, k), persistent=False)

    def expand_filter(self) -> torch.Tensor:
        n, k = self.group.order, self.kernel_size
        banks = expand_group_filter(self.weight, self.filter_index, n)  # (L, Fo, G, Fi, G, k, k)
        w = torch.einsum("lg,logihyx->ogihyx", self.relaxed_weights.to(banks.dtype), banks)
        return w.reshape(self.out_fields * n, self.in_fields * n, k, k)

    def equivariance_penalty(self) -> torch.Tensor:
        """``sum_l sum_{g,h} |w_l(g) - w_l(h)|`` (raw, ordered pairs, no ``alpha``)."""
        w = self.relaxed_weights
        return (w[:, :, None] - w[:, None, :]).abs().sum()

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        return {"w": self.relaxed_weights}

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_banks={self.num_banks}"
