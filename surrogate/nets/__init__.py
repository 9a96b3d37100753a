"""Surrogate networks: one U-Net skeleton on regular feature fields, and the Combo
baseline built from two of them."""

from .combo import ComboUNet
from .unet import FieldUNet

__all__ = ["ComboUNet", "FieldUNet"]
