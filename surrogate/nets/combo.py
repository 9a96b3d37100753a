"""Combo baseline of the paper's Table 1: a plain and an equivariant U-Net, their
outputs combined with learned weights.

    y = x_T + w_p (f_p(x) - x_T) + w_e (f_e(x) - x_T)

with ``f_p`` a plain :class:`FieldUNet` (trivial group) and ``f_e`` a group-conv
:class:`FieldUNet` (C4 or D4), both residual, ``x_T`` the last given frame and
``w = (w_p, w_e)`` two free scalars starting at ``(1/2, 1/2)``. In this residual form
persistence initialisation (both heads zero) makes the untrained model exactly
persistence whatever ``w``; with ``w_p = 0`` the model is exactly equivariant. Both nets
take the same options (``hidden`` fields each), so :func:`surrogate.width_for_params`
sizes the pair.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..layers.group_conv import GroupConv
from .unet import FieldUNet

__all__ = ["ComboUNet"]


class ComboUNet(nn.Module):
    """``(B, T_in, C, H, W) [, aux (B, C_aux, H, W)] -> (B, C, H, W)``: learned
    combination of a plain and a group-equivariant U-Net (see the module docstring).
    Takes :class:`FieldUNet`'s options (``group``: the equivariant net's; ``residual``
    must be True)."""

    def __init__(self, group: str = "C4", name: str = "combo_unet", **options: Any) -> None:
        super().__init__()
        if not options.get("residual", True):
            raise ValueError("combo_unet combines residual updates: residual must be True")
        options.pop("conv_kwargs", None)
        self.equiv = FieldUNet(GroupConv, group=group, name=name, **options)
        self.plain = FieldUNet(GroupConv, group="trivial", name=name, **options)
        self.combo_weights = nn.Parameter(torch.full((2,), 0.5))  # (w_p, w_e)
        self.group = self.equiv.group
        self.layout, self.T_in, self.depth = self.equiv.layout, self.equiv.T_in, self.equiv.depth
        self.residual, self.alpha = True, self.equiv.alpha
        self.breaking = self.equiv.breaking
        self.exported = False
        self.config: dict[str, Any] = dict(self.equiv.config)

    @property
    def delta_scale(self) -> torch.Tensor:
        """``(C,)``: the residual's per-channel scale (shared by both nets)."""
        return self.equiv.delta_scale

    @property
    def aux_layout(self):
        return self.equiv.aux_layout

    def set_delta_scale(self, values) -> None:
        self.equiv.set_delta_scale(values)
        self.plain.set_delta_scale(values)

    @torch.no_grad()
    def init_persistence(self) -> None:
        """Zero both heads: the model predicts ``x[t+1] = x[t]`` until trained."""
        self.equiv.init_persistence()
        self.plain.init_persistence()

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, T_in, C, H, W)`` -> ``(B, C, H, W)``."""
        last = x[:, -1]
        w_p, w_e = self.combo_weights.to(x.dtype)
        return last + w_p * (self.plain(x, aux) - last) + w_e * (self.equiv(x, aux) - last)

    def equivariance_penalty(self) -> torch.Tensor:
        """0: the baseline has no prior (``alpha`` is not used)."""
        return self.combo_weights.new_zeros(())

    def relaxation_weights(self) -> dict[str, torch.Tensor]:
        """``{"combo_weights": (w_p, w_e)}``: how much the plain net's update counts."""
        return {"combo_weights": self.combo_weights.detach()}

    @torch.no_grad()
    def export(self) -> "ComboUNet":
        """A copy whose two nets are exported (plain ``Conv2d`` layers): same outputs."""
        # each net's export is already a copy: deep-copy the rest around them
        memo = {id(self.equiv): self.equiv.export(), id(self.plain): self.plain.export()}
        model = copy.deepcopy(self, memo)
        model.exported = True
        return model

    def extra_repr(self) -> str:
        return f"name={self.config['name']!r}, group={self.group.name}, T_in={self.T_in}"
