"""Helpers for tests/surrogate (a uniquely named module, imported by the tests)."""

from __future__ import annotations

import torch

from surrogate import get_group
from surrogate.symmetry import transform_fields


def equivariance_error(model, x):
    """Largest relative error over the grid-exact elements g of the model's group
    (all of D4 for the plain unet): rotate every input frame, compare outputs."""
    group = model.group if model.group.order > 1 else get_group("D4")
    lay = model.layout
    with torch.no_grad():
        y = model(x)
        errs = []
        for g in group.grid_elements:
            k, f = group.quarter_turns(g), bool(g[1])
            gy = transform_fields(y, lay, k, f)
            gx = transform_fields(x, lay, k, f, channel_dim=-3)
            errs.append(((model(gx) - gy).norm() / gy.norm()).item())
    return max(errs)
