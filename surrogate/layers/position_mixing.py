"""What every position-dependent layer shares: the base class :class:`PositionMixing`,
which mixes ``L`` kernels with weights ``w_l(x)`` on the grid,

    y(x) = sum_l w_l(x) [f * K_l](x) + b,

its exported form :class:`MixedConv`, the paper's smoothness penalty over the grid, and
the checks of the ``relax`` option and of the grid. The relaxed translation, group and
steerable convolutions build on it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..groups import Group
from .group_conv import kaiming_std
from .regular import RegularConv

__all__ = ["PositionMixing", "MixedConv", "mix_banks", "smoothness_penalty", "check_grid",
           "check_relax", "RELAX", "level_grid", "check_plain", "bank_std"]

#: what the weights of a relaxed group / steerable conv may depend on
RELAX = ("rotation", "translation", "both")


def check_relax(relax: str) -> None:
    """Refuse a ``relax`` option that is not one of :data:`RELAX`."""
    if relax not in RELAX:
        raise ValueError(f"relax must be one of {', '.join(RELAX)}, got {relax!r}")


def check_plain(group: Group, what: str) -> None:
    """Refuse a group other than the trivial one for layer ``what``."""
    if group.order != 1:
        raise ValueError(f"{what} acts on plain fields (trivial group), got group {group.name}")


def level_grid(grid, what: str, level: str = "its level") -> tuple[int, int]:
    """``grid`` as ``(H, W)``, refused when missing or malformed (``what`` needs it)."""
    if grid is None or len(grid) != 2 or min(int(g) for g in grid) < 1:
        raise ValueError(f"{what} needs grid=(H, W) of {level}, got {grid!r}")
    return int(grid[0]), int(grid[1])


def bank_std(num_banks: int, fan_in: int) -> float:
    """``sqrt(L) sqrt(2 / fan_in)``: ``L`` banks whose mean has He scale (``L >= 1``)."""
    if num_banks < 1:
        raise ValueError(f"num_banks must be >= 1, got {num_banks}")
    return math.sqrt(num_banks) * kaiming_std(fan_in)


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


def check_grid(x: torch.Tensor, grid: tuple[int, int], name: str) -> None:
    """Refuse an input whose ``(H, W)`` is not the grid a position-dependent layer has."""
    if tuple(x.shape[-2:]) != grid:
        raise ValueError(f"{name} was built for a {grid[0]}x{grid[1]} grid (its position-"
                         f"dependent weights), got {x.shape[-2]}x{x.shape[-1]}; build the "
                         "model with grid=(H, W) of your data")


class PositionMixing(RegularConv):
    """Base of the layers that mix ``L`` kernels :meth:`_banks` ``(L, F_out|G|, F_in|G|, k,
    k)`` per position of ``grid`` with ``relaxed_weights`` ``w``,
    ``y(x) = sum_l w_l(x) [f * K_l](x) + b`` (``relax="rotation"``: one convolution)."""

    relax = "translation"

    def _banks(self) -> torch.Tensor:
        raise NotImplementedError

    def _name(self) -> str:
        """The layer, as errors about its grid name it."""
        return f"{type(self).__name__} (relax={self.relax!r})"

    def expand_filter(self) -> torch.Tensor:
        """The kernel of the layer *when* ``w`` is constant: ``sum_l mean_x w_l K_l``."""
        banks = self._banks()
        wbar = self.relaxed_weights.mean(dim=(1, 2)).to(banks.dtype)
        return torch.einsum("l,loiyx->oiyx", wbar, banks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.relax == "rotation":
            return super().forward(x)
        check_grid(x, self.grid, self._name())
        banks, bias = self._banks(), self.expand_bias()
        L, co, ci, k, _ = banks.shape
        y = mix_banks(F.conv2d(x, banks.reshape(L * co, ci, k, k), padding=k // 2),
                      self.relaxed_weights)
        return y if bias is None else y + bias.view(1, -1, 1, 1).to(y.dtype)

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        return {"w": self.relaxed_weights}

    @torch.no_grad()
    def export(self) -> nn.Module:
        """One ``Conv2d`` (``relax="rotation"``), or a :class:`MixedConv`: the ``L``
        expanded kernels in one ``Conv2d`` and the fixed mixing map ``w``."""
        if self.relax == "rotation":
            return super().export()
        return MixedConv(self._banks(), self.relaxed_weights, self.expand_bias())


class MixedConv(nn.Module):
    """Exported position-dependent layer (:class:`RelaxedTranslationConv`, or a relaxed
    group / steerable conv with ``relax`` translation / both): one ``Conv2d`` with the
    ``L`` banks ``(L, F_out, F_in, k, k)`` as ``L * F_out`` output channels, mixed per
    position by a copy of the map ``w`` (``(L, H, W)`` or ``(L, |G|, H, W)``)."""

    def __init__(self, banks: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        L, f_out, f_in, k, _ = banks.shape
        self.num_banks, self.grid = L, tuple(w.shape[-2:])
        self.conv = nn.Conv2d(f_in, L * f_out, k, padding=k // 2, bias=False)
        self.conv = self.conv.to(device=banks.device, dtype=banks.dtype)
        self.conv.weight.copy_(banks.reshape(L * f_out, f_in, k, k))
        self.register_buffer("w", w.detach().clone())
        self.register_buffer("bias", torch.zeros(f_out) if bias is None
                             else bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_grid(x, self.grid, "exported position-dependent conv")
        return mix_banks(self.conv(x), self.w) + self.bias.view(1, -1, 1, 1)
