"""U-Net building blocks on regular feature fields ``(B, F |G|, H, W)``.

Every block commutes with the group action on regular fields whenever its convolutions
do: pointwise GELU commutes with permuting the group axis, :class:`RegularGroupNorm`
shares statistics and affine parameters over the group axis, 2x2 average pooling maps
2x2 cells onto 2x2 cells under 90-degree turns and flips of an *even* grid, x2
nearest/bilinear up-sampling (``align_corners=False``) is symmetric, and concatenating
two field-major tensors along channels is again field-major.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..groups import Group
from .regular import RegularGroupNorm

__all__ = ["ConvFactory", "ResidualBlock", "Downsample", "Upsample", "concat_fields"]

# (group, in_fields, out_fields, kernel_size) -> conv on regular fields
ConvFactory = Callable[[Group, int, int, int], nn.Module]


class ResidualBlock(nn.Module):
    """``GELU(norm(conv(GELU(norm(conv(x))))) + skip(x))`` on regular fields.

    ``skip`` is the identity when the widths agree, else a 1x1 regular convolution made by
    the same ``conv`` factory (so a relaxed model is relaxed there too)."""

    def __init__(self, conv: ConvFactory, group: Group, in_fields: int, out_fields: int,
                 kernel_size: int = 3, norm_groups: int = 8) -> None:
        super().__init__()
        self.conv1 = conv(group, in_fields, out_fields, kernel_size)
        self.norm1 = RegularGroupNorm(group, out_fields, norm_groups)
        self.conv2 = conv(group, out_fields, out_fields, kernel_size)
        self.norm2 = RegularGroupNorm(group, out_fields, norm_groups)
        self.skip = (nn.Identity() if in_fields == out_fields
                     else conv(group, in_fields, out_fields, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.gelu(h + self.skip(x))


class Downsample(nn.Module):
    """2x2 average pooling (needs even H and W to commute with the group action)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"Downsample needs an even grid, got {tuple(x.shape[-2:])}")
        return F.avg_pool2d(x, 2)


class Upsample(nn.Module):
    """x2 up-sampling, ``mode`` ``"nearest"`` or ``"bilinear"`` (``align_corners=False``)."""

    MODES = ("nearest", "bilinear")

    def __init__(self, mode: str = "bilinear") -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"unknown upsample mode {mode!r}; choose one of {self.MODES}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode=self.mode,
                             align_corners=None if self.mode == "nearest" else False)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def concat_fields(*xs: torch.Tensor) -> torch.Tensor:
    """Skip connection: concatenate field-major regular features along channels."""
    return torch.cat(xs, dim=1)
