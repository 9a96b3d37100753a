"""Relaxed translation group convolution (Wang, Walters & Yu, ICML 2022, Sec. 4.1 for
G = Z^2): combination weights that vary with position,

    y(x) = sum_l w_l(x) [f * Psi_l](x),

with ``L`` plain filter banks ``Psi_l`` and weights ``w`` of shape ``(L, H, W)`` on the
grid the layer runs on. When ``w_l(x)`` does not depend on ``x`` the layer is an
ordinary convolution with the kernel ``sum_l w_l Psi_l`` (translation-equivariant).

Design choices
--------------
* ``w`` starts at ``1/L``: at initialisation the layer is the plain convolution with
  the mean bank, exactly translation-equivariant.
* Each bank is drawn with standard deviation ``sqrt(L) * sqrt(2 / fan_in)`` so that the
  initial mean kernel has He scale, as in :class:`RelaxedGroupConv`.
* :meth:`equivariance_penalty` is ``mean |w(x + e_x) - w(x)| + mean |w(x + e_y) - w(x)|``
  (the paper's smoothness penalty; ``alpha`` is applied by the network). It is zero
  exactly when ``w`` is constant over the grid.
* The layer is tied to its grid: a forward on another ``(H, W)`` is refused.
* :meth:`export` gives the same function without parameters: one ``Conv2d`` holding the
  ``L`` banks and a fixed mixing map.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..groups import Group
from .group_conv import kaiming_std
from .regular import RegularConv

__all__ = ["RelaxedTranslationConv", "MixedConv", "mix_banks", "smoothness_penalty",
           "check_grid", "banked_conv", "check_relax", "RELAX"]

#: what the weights of a relaxed group / steerable conv may depend on
RELAX = ("rotation", "translation", "both")


def check_relax(relax: str) -> None:
    """Refuse a ``relax`` option that is not one of :data:`RELAX`."""
    if relax not in RELAX:
        raise ValueError(f"relax must be one of {', '.join(RELAX)}, got {relax!r}")


def mix_banks(y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``(B, L * F, H, W)`` bank outputs -> ``sum_l w_l(x) y_l(x)``, ``(B, F, H, W)``.
    ``w`` is ``(L, H, W)``, or ``(L, G, H, W)`` for outputs laid out ``(F, G)`` per bank
    (weights per group element and position, ``relax="both"``)."""
    b, _, h, wd = y.shape
    banks = y.view(b, w.shape[0], -1, *w.shape[1:])
    return (banks * w.to(y.dtype)[None, :, None]).sum(1).reshape(b, -1, h, wd)


def smoothness_penalty(w: torch.Tensor) -> torch.Tensor:
    """``mean |w(x+e_x) - w(x)| + mean |w(x+e_y) - w(x)|`` over the last two dims."""
    return ((w[..., 1:] - w[..., :-1]).abs().mean()
            + (w[..., 1:, :] - w[..., :-1, :]).abs().mean())


def banked_conv(x: torch.Tensor, banks: torch.Tensor, w: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
    """``sum_l w_l(x) [x * K_l](x) + b``: ``banks`` ``(L, C_out, C_in, k, k)``, ``w``
    as in :func:`mix_banks`, ``bias`` ``(C_out,)`` or None; ``(B, C_in, H, W)`` ->
    ``(B, C_out, H, W)``."""
    L, co, ci, k, _ = banks.shape
    y = mix_banks(F.conv2d(x, banks.reshape(L * co, ci, k, k), padding=k // 2), w)
    return y if bias is None else y + bias.view(1, -1, 1, 1).to(y.dtype)


def check_grid(x: torch.Tensor, grid: tuple[int, int], name: str) -> None:
    """Refuse an input whose ``(H, W)`` is not the grid a position-dependent layer has."""
    if tuple(x.shape[-2:]) != grid:
        raise ValueError(f"{name} was built for a {grid[0]}x{grid[1]} grid (its position-"
                         f"dependent weights), got {x.shape[-2]}x{x.shape[-1]}; build the "
                         "model with grid=(H, W) of your data")


class RelaxedTranslationConv(RegularConv):
    """Relaxed translation convolution on plain fields (trivial group only).

    Parameters ``weight`` (``Psi``, shape ``(L, F_out, F_in, k, k)``),
    ``relaxed_weights`` (``w``, shape ``(L, H, W)``) and a per-field bias."""

    def __init__(self, group: Group, in_fields: int, out_fields: int, kernel_size: int = 3,
                 bias: bool = True, num_banks: int = 2,
                 grid: tuple[int, int] | None = None) -> None:
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        if group.order != 1:
            raise ValueError("the relaxed translation convolution acts on plain fields "
                             f"(trivial group), got group {group.name}")
        if num_banks < 1:
            raise ValueError(f"num_banks must be >= 1, got {num_banks}")
        if grid is None or len(grid) != 2 or min(int(g) for g in grid) < 1:
            raise ValueError(f"the relaxed translation convolution needs grid=(H, W) of its "
                             f"level, got {grid!r}")
        self.num_banks, self.grid = num_banks, (int(grid[0]), int(grid[1]))
        k = kernel_size
        std = math.sqrt(num_banks) * kaiming_std(in_fields * k * k)
        self.weight = nn.Parameter(torch.randn(num_banks, out_fields, in_fields, k, k) * std)
        self.relaxed_weights = nn.Parameter(torch.full((num_banks, *self.grid),
                                                       1.0 / num_banks))

    def expand_filter(self) -> torch.Tensor:
        """The kernel of the layer *when* ``w`` is constant: ``sum_l mean_x w_l Psi_l``."""
        wbar = self.relaxed_weights.mean(dim=(1, 2)).to(self.weight.dtype)
        return torch.einsum("l,loiyx->oiyx", wbar, self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_grid(x, self.grid, type(self).__name__)
        return banked_conv(x, self.weight, self.relaxed_weights, self.bias)

    def equivariance_penalty(self) -> torch.Tensor:
        """``mean |w(x+e_x) - w(x)| + mean |w(x+e_y) - w(x)|`` (raw, no ``alpha``)."""
        return smoothness_penalty(self.relaxed_weights)

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        return {"w": self.relaxed_weights}

    @torch.no_grad()
    def export(self) -> "MixedConv":
        """The same function with fixed tensors: ``L`` convolutions and the mixing map."""
        return MixedConv(self.weight.detach().clone(), self.relaxed_weights.detach().clone(),
                         None if self.bias is None else self.bias.detach().clone(),
                         self.kernel_size)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_banks={self.num_banks}, grid={self.grid}"


class MixedConv(nn.Module):
    """Exported position-dependent layer (:class:`RelaxedTranslationConv`, or a relaxed
    group conv with ``relax`` translation / both): one ``Conv2d`` with the ``L`` banks as
    ``L * F_out`` output channels, mixed per position by the fixed map ``w`` (``(L, H, W)``
    or ``(L, |G|, H, W)``)."""

    def __init__(self, banks: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None,
                 kernel_size: int) -> None:
        super().__init__()
        L, f_out, f_in, k, _ = banks.shape
        self.num_banks, self.grid = L, tuple(w.shape[-2:])
        self.conv = nn.Conv2d(f_in, L * f_out, k, padding=kernel_size // 2, bias=False)
        self.conv = self.conv.to(device=banks.device, dtype=banks.dtype)
        self.conv.weight.copy_(banks.reshape(L * f_out, f_in, k, k))
        self.register_buffer("w", w)
        self.register_buffer("bias", bias if bias is not None else torch.zeros(f_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_grid(x, self.grid, "exported position-dependent conv")
        return mix_banks(self.conv(x), self.w) + self.bias.view(1, -1, 1, 1)
