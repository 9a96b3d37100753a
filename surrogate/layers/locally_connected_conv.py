"""Constrained locally connected convolution (the paper's CLC baseline, Table 1): a
kernel per grid position, kept smooth by a penalty,

    y(x) = sum_y W(x)[y] f(x + y),      W(x) = Psi + D(x),

on plain fields (trivial group), with a shared kernel ``Psi`` (``(F_out, F_in, k, k)``)
and a per-position deviation ``D`` (``(H, W, F_out, F_in, k, k)``) on the grid the layer
runs on (another grid is refused). ``D`` starts at zero: at initialisation the layer is
the ordinary convolution with ``Psi``, exactly translation-equivariant.

**Size limit**: ``D`` holds ``H W F_out F_in k^2`` numbers per layer (a 32x32 grid,
16 -> 16 fields, 3x3: 2.4 M; 64x64: 9.4 M). A layer over :data:`MAX_POSITION_PARAMS`
(25 M, 100 MB in float32, plus as much again for Adam's moments and the gradient) is
refused with a message saying how to shrink it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..groups import Group
from .group_conv import kaiming_std
from .regular import RegularConv
from .position_mixing import (check_grid, check_plain, level_grid,
                                       smoothness_penalty)

__all__ = ["LocallyConnectedConv", "LocalConv", "MAX_POSITION_PARAMS", "local_conv"]

#: largest per-position parameter count of one layer (``H W F_out F_in k^2``)
MAX_POSITION_PARAMS = 25_000_000


def local_conv(x: torch.Tensor, psi: torch.Tensor, d: torch.Tensor,
               bias: torch.Tensor | None) -> torch.Tensor:
    """``y(x) = sum_y (Psi + D(x))[y] f(x + y)``: ``x (B, F_in, H, W)``, ``psi (F_out,
    F_in, k, k)``, ``d (H, W, F_out, F_in, k, k)`` -> ``(B, F_out, H, W)``."""
    b, _, h, w = x.shape
    k = psi.shape[-1]
    y = F.conv2d(x, psi, bias, padding=k // 2)
    cols = F.unfold(x, k, padding=k // 2)                     # (B, F_in k k, H W)
    dd = d.reshape(h * w, psi.shape[0], -1).to(x.dtype)       # (H W, F_out, F_in k k)
    return y + torch.einsum("bip,poi->bop", cols, dd).reshape(b, -1, h, w)


class LocallyConnectedConv(RegularConv):
    """Constrained locally connected convolution on plain fields (trivial group only).

    Parameters ``weight`` (``Psi``, ``(F_out, F_in, k, k)``), ``local_weights`` (``D``,
    ``(H, W, F_out, F_in, k, k)``, zero at start) and a per-field bias."""

    def __init__(self, group: Group, in_fields: int, out_fields: int, kernel_size: int = 3,
                 bias: bool = True, grid: tuple[int, int] | None = None) -> None:
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        check_plain(group, "the locally connected convolution")
        self.grid = level_grid(grid, "the locally connected convolution")
        k = kernel_size
        n = self.grid[0] * self.grid[1] * out_fields * in_fields * k * k
        if n > MAX_POSITION_PARAMS:
            raise ValueError(
                f"clc_unet: a {in_fields}->{out_fields}-field layer on a {self.grid[0]}x"
                f"{self.grid[1]} grid needs {n:,} per-position parameters (limit "
                f"{MAX_POSITION_PARAMS:,}); use a smaller hidden, depth or grid")
        self.weight = nn.Parameter(torch.randn(out_fields, in_fields, k, k)
                                   * kaiming_std(in_fields * k * k))
        self.local_weights = nn.Parameter(torch.zeros(*self.grid, out_fields, in_fields, k, k))

    def expand_filter(self) -> torch.Tensor:
        """The kernel of the layer *when* ``D`` is constant: ``Psi + mean_x D(x)``."""
        return self.weight + self.local_weights.mean(dim=(0, 1)).to(self.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_grid(x, self.grid, type(self).__name__)
        return local_conv(x, self.weight, self.local_weights, self.bias)

    def equivariance_penalty(self) -> torch.Tensor:
        """The paper's ``mean |W(x+e_x) - W(x)| + mean |W(x+e_y) - W(x)|`` (raw, no
        ``alpha``; ``Psi`` cancels): zero exactly when every position has one kernel."""
        return smoothness_penalty(self.local_weights.movedim((0, 1), (-2, -1)))

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        """``{"w": W(x)}`` as ``(F_out F_in k k, H, W)``: the kernel at every position."""
        w = self.weight[None, None] + self.local_weights
        return {"w": w.reshape(*self.grid, -1).movedim(-1, 0)}

    @torch.no_grad()
    def export(self) -> "LocalConv":
        return LocalConv(self.weight, self.local_weights, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", grid={self.grid}"


class LocalConv(nn.Module):
    """Exported :class:`LocallyConnectedConv`: the same function with fixed tensors."""

    def __init__(self, psi: torch.Tensor, d: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.grid = tuple(d.shape[:2])
        self.register_buffer("psi", psi.detach().clone())
        self.register_buffer("d", d.detach().clone())
        self.register_buffer("bias", torch.zeros(psi.shape[0]) if bias is None
                             else bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_grid(x, self.grid, "exported locally connected conv")
        return local_conv(x, self.psi, self.d, self.bias)
