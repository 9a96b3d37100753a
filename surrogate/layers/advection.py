"""Semi-Lagrangian transport of scalar fields by a velocity, with a learned step.

    s_carried(x) = s(x - c * u_bar(x)),   u_bar = (u_t + u_{t+1}) / 2          (bilinear)

``u_t`` is the last given velocity, ``u_{t+1}`` the network's prediction, ``c`` one
learned scalar (cells per unit of the normalised velocity per step), 0 at init so that
the step starts as the identity (a persistence-initialised model stays persistence).
Bilinear interpolation on the cell-centred grid, with the border value outside the
box, commutes with the grid's 90-degree rotations and flips when ``u`` turns as a
vector, so the transport is exactly C4 / D4 equivariant (C8 only approximately, as a
grid is). It gives a network the one piece of smoke physics a 3x3 stencil learns
slowly: density is carried along by the flow (measured: docs/accuracy.md).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ScalarAdvection", "carry"]


def carry(s: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """``s (B, S, H, W)`` sampled at ``x - disp``: ``disp (B, 2, H, W)`` in cells, (x, y)
    = (last axis, second-last axis); bilinear, border value outside. Zero ``disp`` gives
    ``s`` exactly (integer sample points, unit weights)."""
    b, n, h, w = s.shape
    ys = torch.arange(h, device=s.device, dtype=s.dtype).view(1, h, 1)
    xs = torch.arange(w, device=s.device, dtype=s.dtype).view(1, 1, w)
    px = (xs - disp[:, 0]).clamp(0, w - 1)          # border: clamp the sample point
    py = (ys - disp[:, 1]).clamp(0, h - 1)
    x0, y0 = px.detach().floor(), py.detach().floor()
    fx, fy = (px - x0).unsqueeze(1), (py - y0).unsqueeze(1)
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    flat = s.reshape(b, n, h * w)

    def at(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        idx = (yi * w + xi).reshape(b, 1, h * w).expand(b, n, h * w)
        return flat.gather(2, idx).reshape(b, n, h, w)
    top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx
    bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx
    return top * (1 - fy) + bottom * fy


class ScalarAdvection(nn.Module):
    """Carry the scalar channels of a frame by the mean of the last and the predicted
    velocity (the layout's first vector field); the other channels pass unchanged.

    ``forward(last (B, C, H, W), pred (B, C, H, W)) -> (B, C, H, W)``: ``last`` with its
    scalar channels replaced by their transported values."""

    def __init__(self, vector: tuple[int, int], scalars: list[int]) -> None:
        super().__init__()
        self.vector, self.scalars = tuple(vector), list(scalars)
        self.coef = nn.Parameter(torch.zeros(()))    # c: the identity at init

    def forward(self, last: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        i, j = self.vector
        u_bar = 0.5 * (last[:, [i, j]] + pred[:, [i, j]])
        carried = carry(last[:, self.scalars], self.coef.to(last.dtype) * u_bar)
        chans = list(last.unbind(1))
        for k, c in enumerate(self.scalars):
            chans[c] = carried[:, k]
        return torch.stack(chans, 1)

    def extra_repr(self) -> str:
        return f"vector={self.vector}, scalars={self.scalars}, coef={float(self.coef):.4g}"
