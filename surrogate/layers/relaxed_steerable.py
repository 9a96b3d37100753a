"""Relaxed steerable convolution (Wang, Walters & Yu 2022):
``sum_y sum_l (w_l(y) Phi_l(y)) f(x + y)``.

The steerable basis ``Phi`` is kept (see :mod:`surrogate.layers.steerable`) but its
coefficients may differ at each kernel position ``y``:
``W[o, g, i, h, y] = sum_b w[o, i, b, y] Phi[b, g, h, y]``.

Parameterisation: ``w(y) = w_bar + s * delta(y)``, with ``w_bar`` the strict layer's
coefficients (same shape, same initial draw), ``delta`` zero at initialisation and ``s``
the ``relax_scale``: the paper's function class, exactly equivariant at initialisation;
the split only changes how an optimiser moves the coefficients (docs/architecture.md:
why, and why ``s = 1`` is the default). Checkpoints record their ``s``.

Roto-translation relaxation (``relax``, default ``"rotation"``: the layer above):
``"translation"`` and ``"both"`` mix ``L`` banks by weights ``w_l(x)`` ``(L, H, W)``,
starting at ``1/L``, on the layer's ``grid`` (the paper's ``Relaxed_TR_SteerConv``),
``y(x) = sum_l w_l(x) [f * K_l](x)``, with ``K_l`` a strict steerable kernel
(``"translation"``) or a relaxed one ``w_bar_l + s * delta_l(y)`` (``"both"``: relaxed
over p4 = C4 x| Z^2, or D4 x| Z^2).
"""

from __future__ import annotations

import torch
from torch import nn

from ..groups import Group
from .position_mixing import (PositionMixing, check_relax, level_grid,
                                       smoothness_penalty)
from .steerable import SteerableConv, init_steerable_coefficients

__all__ = ["RelaxedSteerableConv"]


class RelaxedSteerableConv(PositionMixing, SteerableConv):
    """Relaxed steerable convolution regular(G) fields -> regular(G) fields.

    Parameters: ``weight`` ``(F_out, F_in, n_basis)`` (the equivariant part ``w_bar``),
    ``delta`` ``(F_out, F_in, n_basis, k, k)`` (zero at init) and a per-field ``bias``;
    buffer ``Phi`` ``(n_basis, |G|, |G|, k, k)``. With ``relax`` translation / both the
    coefficients gain a leading bank axis ``L`` (``"translation"``: no ``delta``) and
    ``relaxed_weights`` ``w`` ``(L, H, W)`` mixes the banks per position of ``grid``.
    """

    def __init__(self, group: Group | str, in_fields: int, out_fields: int,
                 kernel_size: int = 3, bias: bool = True, relax_scale: float = 1.0,
                 relax: str = "rotation", num_banks: int = 2,
                 grid: tuple[int, int] | None = None) -> None:
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        relax_scale = float(relax_scale)
        if not relax_scale > 0:
            raise ValueError(f"relax_scale must be > 0, got {relax_scale}")
        check_relax(relax)
        self.relax_scale, self.relax, self.num_banks = relax_scale, relax, 1
        if relax != "rotation":
            if num_banks < 1:
                raise ValueError(f"num_banks must be >= 1, got {num_banks}")
            self.grid = level_grid(grid, f"relax={relax!r}", "the layer's level")
            self.num_banks = int(num_banks)
            # L banks drawn at sqrt(L) times the strict scale: their mean has that scale
            banks = torch.stack([init_steerable_coefficients(self.Phi, out_fields, in_fields)
                                 for _ in range(num_banks)])
            self.weight = nn.Parameter(banks * num_banks ** 0.5)
            self.relaxed_weights = nn.Parameter(torch.full((num_banks, *self.grid),
                                                           1.0 / num_banks))
        self.delta = (None if relax == "translation" else
                      nn.Parameter(torch.zeros(*self.weight.shape, kernel_size, kernel_size)))

    def coefficients(self) -> torch.Tensor:
        """``w(y) = w_bar + s * delta(y)``, ``(F_out, F_in, n_basis, k, k)`` (with a
        leading bank axis ``L`` when ``relax`` is not ``"rotation"``)."""
        w = self.weight[..., None, None]
        if self.delta is None:
            return w.expand(*self.weight.shape, self.kernel_size, self.kernel_size)
        return w + self.relax_scale * self.delta

    def _banks(self) -> torch.Tensor:
        """The expanded kernel of each bank, ``(L, F_out|G|, F_in|G|, k, k)`` (L = 1 with
        ``relax="rotation"``)."""
        n, k = self.group.order, self.kernel_size
        w = self.coefficients()
        if self.relax == "rotation":
            w = w[None]
        w = torch.einsum("loibyx,bghyx->logihyx", w, self.Phi.to(w.dtype))
        return w.reshape(w.shape[0], self.out_fields * n, self.in_fields * n, k, k)

    def expand_filter(self) -> torch.Tensor:
        """The kernel; with position-dependent weights, that of their mean over the grid
        (the layer itself then mixes ``L`` kernels per position, see :meth:`forward`)."""
        return self._banks()[0] if self.relax == "rotation" else super().expand_filter()

    def equivariance_penalty(self) -> torch.Tensor:
        """``mean|w[.., m+1, n] - w[.., m, n]| + mean|w[.., m, n+1] - w[.., m, n]|`` over
        the kernel axes (zero iff the layer is exactly equivariant; raw, no ``alpha``),
        plus with ``relax`` translation / both the smoothness of ``w_l(x)`` over the grid
        (``"translation"``: only that)."""
        smooth = (self.weight.new_zeros(()) if self.relax == "rotation"
                  else smoothness_penalty(self.relaxed_weights))
        if self.kernel_size == 1 or self.delta is None:
            return smooth
        w = self.coefficients()
        dm = (w[..., 1:, :] - w[..., :-1, :]).abs().mean()
        dn = (w[..., :, 1:] - w[..., :, :-1]).abs().mean()
        return dm + dn + smooth

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        """``relax="rotation"``: ``w`` ``(F_out, F_in, n_basis, k, k)`` (the
        coefficients); ``delta`` (the relaxation parameter itself); ``deviation``: ``w``
        minus its mean over the kernel positions (zero for an equivariant layer);
        ``relative_deviation``: ``||deviation|| / ||w||`` (scalar).
        ``"translation"`` / ``"both"``: ``w`` the mixing map ``(L, H, W)``, and for
        ``"both"`` ``coefficients`` ``(L, F_out, F_in, n_basis, k, k)``. All detached."""
        if self.relax != "rotation":
            out = {"w": self.relaxed_weights.detach()}
            if self.delta is not None:
                out["coefficients"] = self.coefficients().detach()
            return out
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
        if (self.relax == "rotation" and w is not None and w.dim() == 5
                and prefix + "delta" not in state_dict):
            mean = w.mean(dim=(-2, -1))
            state_dict[prefix + "weight"] = mean
            state_dict[prefix + "delta"] = (w - mean[..., None, None]) / self.relax_scale
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        tail = "" if self.relax == "rotation" else \
            f", relax={self.relax!r}, num_banks={self.num_banks}, grid={self.grid}"
        return super().extra_repr() + f", relax_scale={self.relax_scale:g}" + tail
