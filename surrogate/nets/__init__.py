"""Surrogate networks: one U-Net skeleton on regular feature fields."""

from .unet import FieldUNet

__all__ = ["FieldUNet"]
