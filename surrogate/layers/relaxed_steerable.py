"""Relaxed steerable convolution (Wang, Walters & Yu 2022):
``sum_y sum_l (w_l(y) Phi_l(y)) f(x + y)``.

The steerable basis ``Phi`` is kept (see :mod:`surrogate.layers.steerable`) but its
coefficients may differ at each kernel position ``y``:
``W[o, g, i, h, y] = sum_b w[o, i, b, y] Phi[b, g, h, y]``. The coefficients start
constant over ``y`` (a strict steerable layer's draw broadcast over the kernel), so the
layer is exactly equivariant at initialisation; the penalty is zero exactly then.
"""

from __future__ import annotations

import torch
from torch import nn

from ..groups import Group
from .steerable import SteerableConv

__all__ = ["RelaxedSteerableConv"]


class RelaxedSteerableConv(SteerableConv):
    """Relaxed steerable convolution regular(G) fields -> regular(G) fields.

    Parameters: ``weight`` ``(F_out, F_in, n_basis, k, k)`` (coefficients per kernel
    position) and a per-field ``bias``; buffer ``Phi`` ``(n_basis, |G|, |G|, k, k)``.
    :meth:`equivariance_penalty` is the raw (un-scaled) ``||dw/dm|| + ||dw/dn||``.
    """

    def __init__(self, group: Group | str, in_fields: int, out_fields: int,
                 kernel_size: int = 3, bias: bool = True) -> None:
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        # the strict layer's draw, broadcast over the kernel positions
        w = self.weight.detach()[..., None, None].expand(-1, -1, -1, kernel_size, kernel_size)
        self.weight = nn.Parameter(w.contiguous())

    def expand_filter(self) -> torch.Tensor:
        n, k = self.group.order, self.kernel_size
        w = torch.einsum("oibyx,bghyx->ogihyx", self.weight, self.Phi.to(self.weight.dtype))
        return w.reshape(self.out_fields * n, self.in_fields * n, k, k)

    def equivariance_penalty(self) -> torch.Tensor:
        """Mean absolute finite difference of the coefficients along the two kernel axes,
        ``mean|w[.., m+1, n] - w[.., m, n]| + mean|w[.., m, n+1] - w[.., m, n]|``:
        differentiable, zero iff ``w`` is constant over the kernel (then the layer is
        exactly equivariant). Not multiplied by the model's alpha."""
        w = self.weight
        if self.kernel_size == 1:
            return w.new_zeros(())
        dm = (w[..., 1:, :] - w[..., :-1, :]).abs().mean()
        dn = (w[..., :, 1:] - w[..., :, :-1]).abs().mean()
        return dm + dn

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        """``w`` ``(F_out, F_in, n_basis, k, k)``; ``deviation``: ``w`` minus its mean over
        the kernel positions (zero for an equivariant layer); ``relative_deviation``:
        ``||deviation|| / ||w||`` (scalar). All detached."""
        w = self.weight.detach()
        dev = w - w.mean(dim=(-2, -1), keepdim=True)
        return {"w": w, "deviation": dev,
                "relative_deviation": dev.norm() / w.norm().clamp_min(1e-30)}

