"""Relaxed steerable convolution (Wang, Walters & Yu 2022):
``sum_y sum_l (w_l(y) Phi_l(y)) f(x + y)``.

The steerable basis ``Phi`` is kept (see :mod:`surrogate.layers.steerable`) but its
coefficients may differ at each kernel position ``y``:
``W[o, g, i, h, y] = sum_b w[o, i, b, y] Phi[b, g, h, y]``.

Parameterisation: ``w(y) = w_bar + s * delta(y)``, with ``w_bar`` the strict layer's
coefficients (same shape, same initial draw), ``delta`` zero at initialisation and ``s``
the ``relax_scale``. The function class is the paper's (any ``w(y)``), and the layer is
exactly equivariant at initialisation. The split only changes how an optimiser moves the
coefficients: the equivariant part ``w_bar`` gets the gradient summed over the kernel, as
in the strict layer, and with Adam the non-equivariant part moves ``s`` times slower per
step. Under the first training recipe (state-unit residuals) free per-position
coefficients drifted ~10% from equivariance on exactly symmetric data and ``s = 0.1`` was
the default; with the delta-target recipe ``s = 1`` rolls out better than ``s = 0.1`` in
all 16 cells of the CPU accuracy benchmark (4 scenarios x 2 splits x 2 metrics, 3 seeds,
docs/accuracy.md), so it is the default since 2026-12-02. Checkpoints record their ``s``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..groups import Group
from .steerable import SteerableConv

__all__ = ["RelaxedSteerableConv"]


class RelaxedSteerableConv(SteerableConv):
    """Relaxed steerable convolution regular(G) fields -> regular(G) fields.

    Parameters: ``weight`` ``(F_out, F_in, n_basis)`` (the equivariant part ``w_bar``),
    ``delta`` ``(F_out, F_in, n_basis, k, k)`` (per-position relaxation, zero at init) and
    a per-field ``bias``; buffer ``Phi`` ``(n_basis, |G|, |G|, k, k)``. The coefficients
    are :meth:`coefficients` ``w(y) = weight + relax_scale * delta(y)``;
    :meth:`equivariance_penalty` is the raw (un-scaled) ``||dw/dm|| + ||dw/dn||``.
    """

    def __init__(self, group: Group | str, in_fields: int, out_fields: int,
                 kernel_size: int = 3, bias: bool = True, relax_scale: float = 1.0) -> None:
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        relax_scale = float(relax_scale)
        if not relax_scale > 0:
            raise ValueError(f"relax_scale must be > 0, got {relax_scale}")
        self.relax_scale = relax_scale
        self.delta = nn.Parameter(torch.zeros(*self.weight.shape, kernel_size, kernel_size))

    def coefficients(self) -> torch.Tensor:
        """``w(y) = w_bar + s * delta(y)``, ``(F_out, F_in, n_basis, k, k)``."""
        return self.weight[..., None, None] + self.relax_scale * self.delta

    def expand_filter(self) -> torch.Tensor:
        n, k = self.group.order, self.kernel_size
        w = self.coefficients()
        w = torch.einsum("oibyx,bghyx->ogihyx", w, self.Phi.to(w.dtype))
        return w.reshape(self.out_fields * n, self.in_fields * n, k, k)

    def equivariance_penalty(self) -> torch.Tensor:
        """Mean absolute finite difference of the coefficients along the two kernel axes,
        ``mean|w[.., m+1, n] - w[.., m, n]| + mean|w[.., m, n+1] - w[.., m, n]|``:
        differentiable, zero iff ``w`` is constant over the kernel (then the layer is
        exactly equivariant). Not multiplied by the model's alpha."""
        if self.kernel_size == 1:
            return self.weight.new_zeros(())
        w = self.coefficients()
        dm = (w[..., 1:, :] - w[..., :-1, :]).abs().mean()
        dn = (w[..., :, 1:] - w[..., :, :-1]).abs().mean()
        return dm + dn

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        """``w`` ``(F_out, F_in, n_basis, k, k)`` (the coefficients); ``delta`` (the
        relaxation parameter itself); ``deviation``: ``w`` minus its mean over the kernel
        positions (zero for an equivariant layer); ``relative_deviation``:
        ``||deviation|| / ||w||`` (scalar). All detached."""
        w = self.coefficients().detach()
        dev = w - w.mean(dim=(-2, -1), keepdim=True)
        return {"w": w, "delta": self.delta.detach(), "deviation": dev,
                "relative_deviation": dev.norm() / w.norm().clamp_min(1e-30)}

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs) -> None:
        # checkpoints written before the w_bar + s * delta split hold one 5-D "weight"
        # w(y): split it into its mean over the kernel and the scaled remainder (same
        # function, to rounding)
        w = state_dict.get(prefix + "weight")
        if (w is not None and w.dim() == 5 and prefix + "delta" not in state_dict):
            mean = w.mean(dim=(-2, -1))
            state_dict[prefix + "weight"] = mean
            state_dict[prefix + "delta"] = (w - mean[..., None, None]) / self.relax_scale
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", relax_scale={self.relax_scale:g}"
