"""Layers of relaxflow's surrogates; every convolution acts on regular feature fields."""

from .regular import FieldLift, FieldProjection, RegularConv, RegularGroupNorm

__all__ = ["FieldLift", "FieldProjection", "RegularConv", "RegularGroupNorm"]
