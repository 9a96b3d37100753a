"""Residual pathway prior convolution (Finzi, Benton & Wilson, NeurIPS 2021), a
soft-equivariance baseline of the paper's Table 1, on regular fields:

    W = expand(Psi) + W_plain,

an exactly equivariant group convolution (``Psi``, as :class:`GroupConv`) plus an
unconstrained convolution of the same regular fields. The prior is an L2 penalty that
is small on the equivariant path and larger on the plain one, so the data must pay for
every departure from equivariance:

    penalty = ||W_plain||^2 + rpp_ratio * ||Psi||^2      (``alpha`` applied by the net)

``W_plain`` starts at zero, so the layer is exactly equivariant at initialisation; the
layer is one convolution, so :meth:`export` folds both paths into one ``Conv2d``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..groups import Group
from .group_conv import check_grid_group, expand_group_filter, group_filter_index, kaiming_std
from .regular import RegularConv

__all__ = ["RPPConv"]


class RPPConv(RegularConv):
    """Equivariant path ``weight`` (``(F_out, F_in, |G|, k, k)``) plus plain path
    ``plain_weight`` (``(F_out |G|, F_in |G|, k, k)``, zero at init) and a per-field bias."""

    def __init__(self, group: Group, in_fields: int, out_fields: int, kernel_size: int = 3,
                 bias: bool = True, rpp_ratio: float = 0.01) -> None:
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        check_grid_group(group, type(self).__name__)
        if not rpp_ratio >= 0:
            raise ValueError(f"rpp_ratio must be >= 0, got {rpp_ratio}")
        n, k = group.order, kernel_size
        self.rpp_ratio = float(rpp_ratio)
        self.weight = nn.Parameter(torch.randn(out_fields, in_fields, n, k, k)
                                   * kaiming_std(in_fields * n * k * k))
        self.plain_weight = nn.Parameter(torch.zeros(out_fields * n, in_fields * n, k, k))
        self.register_buffer("filter_index", group_filter_index(group, k), persistent=False)

    def equivariant_filter(self) -> torch.Tensor:
        n, k = self.group.order, self.kernel_size
        w = expand_group_filter(self.weight, self.filter_index, n)
        return w.reshape(self.out_fields * n, self.in_fields * n, k, k)

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
