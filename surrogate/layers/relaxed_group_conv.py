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

Roto-translation relaxation (``relax``)
---------------------------------------
``relax="rotation"`` (default) is the layer above. ``"translation"`` makes the weights
depend on position only, ``w_l(x)`` of shape ``(L, H, W)``; ``"both"`` on the group
element and the position, ``w_l(g, x)`` of shape ``(L, |G|, H, W)`` (relaxed over
p4 = C4 x| Z^2, or D4 x| Z^2):

    [f *~ Psi](g, x) = sum_l w_l(g, x) [f * Psi_l](g, x),

the ``L`` strict group convolutions mixed per output element and position (so the
layer is tied to its ``grid``). Constant weights give the strict layer: exactly
equivariant at initialisation. The penalty adds the mean smoothness over positions,
``mean |w(x+e_x) - w(x)| + mean |w(x+e_y) - w(x)|``, to the (position-averaged)
pair term over ``g``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..groups import Group
from .group_conv import check_grid_group, expand_group_filter, group_filter_index, kaiming_std
from .regular import RegularConv
from .relaxed_translation_conv import (RELAX, MixedConv, banked_conv, check_grid,
                                       check_relax, smoothness_penalty)

__all__ = ["RelaxedGroupConv", "RELAX"]


class RelaxedGroupConv(RegularConv):
    """Relaxed group convolution on regular fields (C4, D4, trivial).

    Parameters ``weight`` (``Psi``, shape ``(L, F_out, F_in, |G|, k, k)``),
    ``relaxed_weights`` (``w``, shape ``(L, |G|)``) and a per-field bias.
    """

    def __init__(self, group: Group, in_fields: int, out_fields: int, kernel_size: int = 3,
                 bias: bool = True, num_banks: int = 2, relax: str = "rotation",
                 grid: tuple[int, int] | None = None) -> None:
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        check_grid_group(group, type(self).__name__)
        if num_banks < 1:
            raise ValueError(f"num_banks must be >= 1, got {num_banks}")
        check_relax(relax)
        n, k = group.order, kernel_size
        self.num_banks, self.relax = num_banks, relax
        std = math.sqrt(num_banks) * kaiming_std(in_fields * n * k * k)
        self.weight = nn.Parameter(torch.randn(num_banks, out_fields, in_fields, n, k, k) * std)
        if relax == "rotation":
            shape: tuple[int, ...] = (num_banks, n)
        else:
            if grid is None or len(grid) != 2:
                raise ValueError(f"relax={relax!r} needs grid=(H, W) of the layer's level, "
                                 f"got {grid!r}")
            self.grid = (int(grid[0]), int(grid[1]))
            shape = (num_banks, *self.grid) if relax == "translation" else \
                (num_banks, n, *self.grid)
        self.relaxed_weights = nn.Parameter(torch.full(shape, 1.0 / num_banks))
        self.register_buffer("filter_index", group_filter_index(group, k), persistent=False)

    def expand_filter(self) -> torch.Tensor:
        """The kernel; with position-dependent weights, that of their mean over the grid
        (the layer itself then mixes ``L`` strict convolutions, see :meth:`forward`)."""
        n, k = self.group.order, self.kernel_size
        banks = expand_group_filter(self.weight, self.filter_index, n)  # (L, Fo, G, Fi, G, k, k)
        w = self.relaxed_weights
        if self.relax == "translation":
            w = w.mean(dim=(1, 2))[:, None].expand(-1, n)
        elif self.relax == "both":
            w = w.mean(dim=(2, 3))
        w = torch.einsum("lg,logihyx->ogihyx", w.to(banks.dtype), banks)
        return w.reshape(self.out_fields * n, self.in_fields * n, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.relax == "rotation":
            return super().forward(x)
        check_grid(x, self.grid, f"{type(self).__name__} (relax={self.relax!r})")
        n, k, L = self.group.order, self.kernel_size, self.num_banks
        banks = expand_group_filter(self.weight, self.filter_index, n)
        banks = banks.reshape(L, self.out_fields * n, self.in_fields * n, k, k)
        # w (L, H, W) or (L, G, H, W)
        return banked_conv(x, banks, self.relaxed_weights, self.expand_bias())

    def equivariance_penalty(self) -> torch.Tensor:
        """``sum_l sum_{g,h} |w_l(g) - w_l(h)|`` (raw, ordered pairs, no ``alpha``);
        with position-dependent weights the pair term is averaged over positions and
        the smoothness over positions is added."""
        w = self.relaxed_weights
        if self.relax == "rotation":
            return (w[:, :, None] - w[:, None, :]).abs().sum()
        smooth = smoothness_penalty(w)
        if self.relax == "translation":
            return smooth
        pairs = (w[:, :, None] - w[:, None, :]).abs().sum(dim=(0, 1, 2)).mean()
        return pairs + smooth

    @torch.no_grad()
    def export(self) -> nn.Module:
        """One ``Conv2d`` (``relax="rotation"``), or, with position-dependent weights, a
        :class:`MixedConv`: the ``L`` expanded strict kernels in one ``Conv2d`` and the
        fixed mixing map ``w``; same outputs, no basis expansion."""
        if self.relax == "rotation":
            return super().export()
        n, k, L = self.group.order, self.kernel_size, self.num_banks
        banks = expand_group_filter(self.weight, self.filter_index, n)
        banks = banks.reshape(L, self.out_fields * n, self.in_fields * n, k, k)
        bias = self.expand_bias()
        return MixedConv(banks.detach().clone(), self.relaxed_weights.detach().clone(),
                         None if bias is None else bias.detach().clone(), k)

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        return {"w": self.relaxed_weights}

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_banks={self.num_banks}, relax={self.relax!r}"
