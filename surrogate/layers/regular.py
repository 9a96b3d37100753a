"""Building blocks shared by every group-equivariant layer: regular feature fields.

A regular feature map has shape ``(B, F * |G|, H, W)`` with field-major channels
(channel ``f * |G| + index(g)``); ``g`` acts by ``(g f)(h, p) = f(g^-1 h, g^-1 p)``.
The plain (non-equivariant) network is the special case ``G = trivial``, ``|G| = 1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..groups import Group
from ..symmetry import FieldLayout

__all__ = ["RegularConv", "FieldLift", "FieldProjection", "RegularGroupNorm"]


class RegularConv(nn.Module):
    """Base class: a convolution ``(B, F_in |G|, H, W) -> (B, F_out |G|, H, W)`` (zero
    padding ``k // 2``) between regular fields whose ``(F_out|G|, F_in|G|, k, k)`` kernel
    subclasses *expand* from their parameters (:meth:`expand_filter`; relaxed ones also
    override :meth:`equivariance_penalty` and :meth:`relaxation_weights`). The bias is
    one value per output field, shared over the group axis (never breaks equivariance).
    """

    def __init__(self, group: Group, in_fields: int, out_fields: int, kernel_size: int = 3,
                 bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 != 1 or kernel_size < 1:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        if in_fields < 1 or out_fields < 1:
            raise ValueError(f"need at least one field, got in={in_fields}, out={out_fields}")
        self.group, self.in_fields, self.out_fields = group, in_fields, out_fields
        self.kernel_size = kernel_size
        self.bias = nn.Parameter(torch.zeros(out_fields)) if bias else None

    @property
    def in_channels(self) -> int:
        return self.in_fields * self.group.order

    @property
    def out_channels(self) -> int:
        return self.out_fields * self.group.order

    def expand_filter(self) -> torch.Tensor:
        """The plain convolution kernel, shape ``(F_out|G|, F_in|G|, k, k)``."""
        raise NotImplementedError

    def expand_bias(self) -> torch.Tensor | None:
        """Per-field bias repeated over the group axis, shape ``(F_out|G|,)``."""
        return None if self.bias is None else self.bias.repeat_interleave(self.group.order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.expand_filter(), self.expand_bias(),
                        padding=self.kernel_size // 2)

    def equivariance_penalty(self) -> torch.Tensor:
        """Zero for a strictly equivariant layer; relaxed layers override this."""
        return self.bias.new_zeros(()) if self.bias is not None else torch.zeros(())

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        """Named tensors describing how the layer departs from equivariance ({} if strict)."""
        return {}

    @torch.no_grad()
    def export(self) -> nn.Conv2d:
        """An ordinary ``nn.Conv2d`` with the expanded kernel: same outputs, no expansion."""
        w = self.expand_filter().detach()
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size,
                         padding=self.kernel_size // 2, bias=self.bias is not None)
        conv = conv.to(device=w.device, dtype=w.dtype)
        conv.weight.copy_(w)
        if self.bias is not None:
            conv.bias.copy_(self.expand_bias())
        return conv

    def extra_repr(self) -> str:
        return (f"group={self.group.name}, in_fields={self.in_fields}, "
                f"out_fields={self.out_fields}, kernel_size={self.kernel_size}")


def _lift_matrix(layout: FieldLayout, group: Group) -> torch.Tensor:
    """Matrix ``(n_fields |G|, C)`` lifting one frame's channels to regular fields:
    a vector v gives ``f(h) = <v, M_h e_1>`` (the paper's cos/sin lift), a scalar s
    gives ``f(h) = s``. For the trivial group every channel is its own field."""
    c, n = layout.num_channels, group.order
    if n == 1:
        return torch.eye(c, dtype=torch.float64)

    def block(columns: list[int], values) -> torch.Tensor:  # (|G|, C)
        m = torch.zeros(n, c, dtype=torch.float64)
        m[:, columns] = values
        return m
    return torch.cat([block([i, j], group.directions) for i, j in layout.vector_indices]
                     + [block([i], 1.0) for i in layout.scalar_indices])


class FieldLift(nn.Module):
    """Parameter-free, equivariant lift of ``(B, C, H, W)`` fields (vectors rho_1,
    scalars trivial) to regular fields ``(B, n_fields |G|, H, W)``; lossless for C4/D4/C8."""

    def __init__(self, layout: FieldLayout, group: Group) -> None:
        super().__init__()
        self.layout, self.group = layout, group
        self.register_buffer("matrix", _lift_matrix(layout, group).float(), persistent=False)

    @property
    def out_fields(self) -> int:
        """Number of regular fields one frame lifts to."""
        return self.matrix.shape[0] // self.group.order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oc,bchw->bohw", self.matrix.to(x.dtype), x)


class FieldProjection(nn.Module):
    """Parameter-free, equivariant projection of regular fields ``(B, n_fields |G|, H, W)``
    back to ``(B, C, H, W)``: ``v = (2/|G|) sum_h f(h) M_h e_1``, ``s = mean_h f(h)``.
    It is a left inverse of :class:`FieldLift`."""

    def __init__(self, layout: FieldLayout, group: Group) -> None:
        super().__init__()
        self.layout, self.group = layout, group
        proj = _lift_matrix(layout, group).T.clone()
        if group.order > 1:
            n, nv = group.order, len(layout.vectors)
            proj[:, : nv * n] *= 2.0 / n
            proj[:, nv * n:] /= n
        self.register_buffer("matrix", proj.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("co,bohw->bchw", self.matrix.to(x.dtype), x)


class RegularGroupNorm(nn.Module):
    """GroupNorm whose groups hold whole fields and whose statistics and affine parameters
    are shared over the group axis (so it commutes with the group action).
    Input/output ``(B, F * |G|, H, W)``."""

    def __init__(self, group: Group, num_fields: int, num_groups: int = 8,
                 eps: float = 1e-5) -> None:
        super().__init__()
        g = min(num_groups, num_fields)
        while num_fields % g:
            g -= 1
        self.group, self.num_fields, self.num_groups, self.eps = group, num_fields, g, eps
        self.weight = nn.Parameter(torch.ones(num_fields))
        self.bias = nn.Parameter(torch.zeros(num_fields))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # per-field affine parameters repeated over the group axis, applied inside the
        # fused group_norm kernel (no extra passes over the feature map)
        n = self.group.order
        return F.group_norm(x, self.num_groups, self.weight.repeat_interleave(n),
                            self.bias.repeat_interleave(n), self.eps)
