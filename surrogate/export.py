"""Inference export: expand every relaxed / steerable / group kernel once into ordinary
``nn.Conv2d`` weights, so inference pays no basis expansion or filter rotation."""

from __future__ import annotations

from torch import nn

__all__ = ["export"]


def export(model: nn.Module) -> nn.Module:
    """An equivalent plain-PyTorch copy of ``model`` (``model`` itself is unchanged);
    outputs agree to float32 tolerance."""
    fn = getattr(model, "export", None)
    if not callable(fn):
        raise TypeError(f"{type(model).__name__} has no export(); build the model with "
                        "surrogate.build_model")
    return fn()
