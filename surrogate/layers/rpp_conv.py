"""Residual pathway prior convolution (Finzi, Benton & Wilson, NeurIPS 2021), a
soft-equivariance baseline of the paper's Table 1, on regular fields:

    W = expand(Psi) + W_plain,

an exactly equivariant group convolution (``Psi``, as :class:`GroupConv`) plus an
unconstrained convolution ``W_plain`` (zero at initialisation) of the same regular
fields. The L2 prior, ``||W_plain||^2 + rpp_ratio * ||Psi||^2``, is larger on the plain
path, so the data must pay for every departure from equivariance.
"""

from __future__ import annotations

import torch
from torch import nn

from ..groups import Group
from .group_conv import GroupConv

__all__ = ["RPPConv"]


class RPPConv(GroupConv):
    """Equivariant path ``weight`` (``(F_out, F_in, |G|, k, k)``) plus plain path
    ``plain_weight`` (``(F_out |G|, F_in |G|, k, k)``, zero at init) and a per-field bias."""

    def __init__(self, group: Group, in_fields: int, out_fields: int, kernel_size: int = 3,
                 bias: bool = True, rpp_ratio: float = 0.01) -> None:
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        if not rpp_ratio >= 0:
            raise ValueError(f"rpp_ratio must be >= 0, got {rpp_ratio}")
        n, k = group.order, kernel_size
        self.rpp_ratio = float(rpp_ratio)
        self.plain_weight = nn.Parameter(torch.zeros(out_fields * n, in_fields * n, k, k))

    def equivariant_filter(self) -> torch.Tensor:
        """The equivariant path's expanded kernel, ``(F_out |G|, F_in |G|, k, k)``."""
        return super().expand_filter()

    def expand_filter(self) -> torch.Tensor:
        return self.equivariant_filter() + self.plain_weight.to(self.weight.dtype)

    def equivariance_penalty(self) -> torch.Tensor:
        """``||W_plain||^2 + rpp_ratio ||Psi||^2`` (raw, no ``alpha``)."""
        return self.plain_weight.square().sum() + self.rpp_ratio * self.weight.square().sum()

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        """``w``: the plain path; ``equivariant``: the expanded equivariant kernel (the
        size of one against the other is how far the layer left equivariance)."""
        return {"w": self.plain_weight, "equivariant": self.equivariant_filter()}

    def extra_repr(self) -> str:
        return super().extra_repr() + f", rpp_ratio={self.rpp_ratio:g}"
