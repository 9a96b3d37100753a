"""Group convolution between regular feature fields (C4, D4, or the trivial group).

A free filter ``Psi`` of shape ``(F_out, F_in, |G|, k, k)`` is expanded into the plain
kernel

    W[o, g, i, h, y] = Psi[o, i, g^-1 h, g^-1 y],

i.e. for every output group element ``g`` the filter is moved on the grid by ``g``
(:func:`surrogate.symmetry.transform_grid`) and its group axis is permuted by the left
regular representation. The resulting convolution is exactly equivariant:
``conv(g f) = g conv(f)`` for regular fields. With the trivial group it is an ordinary
convolution (``W = Psi``).

The expansion is one gather with a precomputed index, so it costs a negligible fraction
of the convolution itself (and :meth:`RegularConv.export` removes it altogether).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..groups import Group
from ..symmetry import transform_grid
from .regular import RegularConv

__all__ = ["GroupConv", "group_filter_index", "check_grid_group"]


def check_grid_group(group: Group, layer: str) -> None:
    """Raise if some element of ``group`` does not map the pixel grid onto itself."""
    if len(group.grid_elements) != group.order:
        raise ValueError(
            f"{layer} needs a group acting exactly on the pixel grid (C4, D4 or trivial); "
            f"{group.name} contains rotations by other than multiples of 90 degrees. "
            "Use a steerable model (steer_unet / relaxed_steer_unet) for C8.")


def group_filter_index(group: Group, kernel_size: int) -> torch.Tensor:
    """Index ``(|G|, |G| * k * k)`` into a filter flattened as ``(|G| * k * k)``:
    row ``g`` gives, for every ``(h, y)``, the flat position of ``(g^-1 h, g^-1 y)``."""
    n, k = group.order, kernel_size
    flat = torch.arange(n * k * k).reshape(n, k, k)
    rows = []
    for g in group.elements:
        moved = transform_grid(flat, group.quarter_turns(g), bool(g[1]))  # [h, y] <- [h, g^-1 y]
        perm = group.left_regular_permutation[group.index(g)]             # P[g, h] = g^-1 h
        rows.append(moved[perm].reshape(-1))
    return torch.stack(rows)


def expand_group_filter(psi: torch.Tensor, index: torch.Tensor, order: int) -> torch.Tensor:
    """``psi (..., F_out, F_in, |G|, k, k)`` -> ``(..., F_out, |G|, F_in, |G|, k, k)``
    with ``out[..., o, g, i, h, y] = psi[..., o, i, g^-1 h, g^-1 y]``."""
    *lead, fo, fi, n, k, _ = psi.shape
    flat = psi.reshape(*lead, fo, fi, n * k * k)
    w = flat.index_select(-1, index.reshape(-1)).reshape(*lead, fo, fi, order, n, k, k)
    return w.transpose(-5, -4)  # (..., F_out, |G|_g, F_in, |G|_h, k, k)


def kaiming_std(fan_in: int) -> float:
    """He-normal standard deviation (gain sqrt(2), suited to GELU/ReLU networks)."""
    return math.sqrt(2.0 / fan_in)


class GroupConv(RegularConv):
    """Exactly equivariant group convolution on regular fields (C4, D4, trivial).

    Input ``(B, F_in |G|, H, W)`` -> output ``(B, F_out |G|, H, W)``; parameters
    ``weight`` (``Psi``, shape ``(F_out, F_in, |G|, k, k)``) and a per-field bias.
    """

    def __init__(self, group: Group, in_fields: int, out_fields: int, kernel_size: int = 3,
                 bias: bool = True) -> None:
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        check_grid_group(group, type(self).__name__)
        n, k = group.order, kernel_size
        fan_in = in_fields * n * k * k
        self.weight = nn.Parameter(torch.randn(out_fields, in_fields, n, k, k)
                                   * kaiming_std(fan_in))
        self.register_buffer("filter_index", group_filter_index(group, k), persistent=False)

    def expand_filter(self) -> torch.Tensor:
        n, k = self.group.order, self.kernel_size
        if n == 1:
            return self.weight.reshape(self.out_fields, self.in_fields, k, k)
        w = expand_group_filter(self.weight, self.filter_index, n)
        return w.reshape(self.out_fields * n, self.in_fields * n, k, k)
