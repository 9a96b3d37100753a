"""Normalisation of fields that respects their symmetry.

A vector field is divided by ONE magnitude for both components and never shifted (a
per-component scale or mean would not commute with rotations); a scalar field may be
shifted and scaled. The statistics are fitted on the training split and stored in the
checkpoint, and the same object normalises every split and every forecast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .symmetry import FieldLayout

__all__ = ["Normalization"]


def _channel_rows(data, layout: FieldLayout, channel_dim: int, what: str) -> np.ndarray:
    """``data`` (array or tensor) as float64 ``(C, N)``; NaN/Inf refused (fitting ``what``)."""
    a = np.asarray(data.detach().cpu() if torch.is_tensor(data) else data, np.float64)
    a = np.moveaxis(a, channel_dim, 0).reshape(layout.num_channels, -1)
    if not np.isfinite(a).all():
        raise ValueError(f"cannot fit {what}: data contain NaN or Inf")
    return a


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``x_norm = (x - shift) / scale`` for a ``FieldLayout``.

    ``aux``: the normalisation of the model's static aux fields from the data (the
    ``cause`` breaking input, layout :func:`surrogate.breaking.data_layout`), or None.
    ``delta_scale``: per-channel RMS of the one-step differences ``x[t+1] - x[t]`` in
    physical units (one value per vector field), or None (state-unit residuals).
    ``lower_bound``: per-channel lower bound of a predicted frame in physical units
    (``-inf``: none; only scalar fields may have one), or None (no bounds)."""

    layout: FieldLayout
    scale: tuple[float, ...]
    shift: tuple[float, ...]
    aux: "Normalization | None" = None
    delta_scale: tuple[float, ...] | None = None
    lower_bound: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.aux is not None and not isinstance(self.aux, Normalization):
            raise ValueError(f"aux must be a Normalization or None, got {type(self.aux)}")
        c = self.layout.num_channels
        if len(self.scale) != c or len(self.shift) != c:
            raise ValueError(f"need {c} scales and shifts for channels {self.layout.channels}")
        if any(not np.isfinite(s) or s <= 0 for s in self.scale):
            raise ValueError(f"scales must be positive and finite, got {self.scale}")
        for i, j in self.layout.vector_indices:
            if self.scale[i] != self.scale[j] or self.shift[i] != 0 or self.shift[j] != 0:
                raise ValueError("a vector field needs one scale for both components and "
                                 "no shift (anything else breaks rotation equivariance)")
        if self.delta_scale is not None:
            d = tuple(float(v) for v in self.delta_scale)
            if len(d) != c or any(not np.isfinite(v) or v <= 0 for v in d):
                raise ValueError(f"delta_scale needs {c} positive finite values, got {d}")
            if any(d[i] != d[j] for i, j in self.layout.vector_indices):
                raise ValueError("a vector field needs one delta scale for both components")
            object.__setattr__(self, "delta_scale", d)
        if self.lower_bound is not None:
            b = tuple(-math.inf if v is None else float(v) for v in self.lower_bound)
            if len(b) != c or any(math.isnan(v) or v == math.inf for v in b):
                raise ValueError(f"lower_bound needs {c} values (finite or -inf), got {b}")
            if any(b[i] != -math.inf or b[j] != -math.inf
                   for i, j in self.layout.vector_indices):
                raise ValueError("a vector field cannot have a lower bound (it would break "
                                 "rotation equivariance)")
            object.__setattr__(self, "lower_bound", b)

    def apply_lower_bound(self, x: torch.Tensor, channel_dim: int = -3) -> torch.Tensor:
        """``max(x, lower_bound)`` per channel of physical frames (unchanged without)."""
        if self.lower_bound is None:
            return x
        return torch.maximum(x, self._broadcast(x, self.lower_bound, channel_dim))

    @property
    def delta_gain(self) -> tuple[float, ...]:
        """``delta_scale / scale`` per channel: one unit of a normalised difference in
        normalised state units (all 1 without :attr:`delta_scale`)."""
        if self.delta_scale is None:
            return (1.0,) * self.layout.num_channels
        return tuple(d / s for d, s in zip(self.delta_scale, self.scale))

    @staticmethod
    def fit_delta_scale(diffs, layout: FieldLayout, channel_dim: int = -3) -> tuple[float, ...]:
        """Eq. "delta normalisation": per-channel RMS of one-step differences ``diffs``
        ``(..., C, ..., H, W)``; vectors ``sqrt(mean(du^2 + dv^2) / 2)`` for both
        components, scalars ``sqrt(mean(ds^2))``; never a shift."""
        a = _channel_rows(diffs, layout, channel_dim, "the delta scale")
        if not a.size:
            raise ValueError("cannot fit the delta scale: no pair of consecutive frames")
        return Normalization.delta_scale_from_mean_squares((a ** 2).mean(axis=1), layout)

    @staticmethod
    def delta_scale_from_mean_squares(ms, layout: FieldLayout) -> tuple[float, ...]:
        """The delta scale from per-channel mean squares ``ms (C,)`` of the differences
        (a vector's two components share ``sqrt((ms_u + ms_v) / 2)``)."""
        ms = [float(v) for v in ms]
        d = [np.sqrt(v) for v in ms]
        for i, j in layout.vector_indices:
            d[i] = d[j] = np.sqrt((ms[i] + ms[j]) / 2)
        return tuple(float(v) if v > 1e-12 else 1.0 for v in d)

    @classmethod
    def identity(cls, layout: FieldLayout) -> "Normalization":
        c = layout.num_channels
        return cls(layout, (1.0,) * c, (0.0,) * c)

    @classmethod
    def fit(cls, data, layout: FieldLayout, channel_dim: int = -3, scalars: bool = True,
            what: str = "normalisation") -> "Normalization":
        """Fit on an array ``(..., C, ..., H, W)``: vectors get the RMS of their components
        (``sqrt(mean(u^2 + v^2) / 2)``), scalars their mean and standard deviation (with
        ``scalars=False`` they are left as they are: scale 1, shift 0). ``what`` names
        the normalisation in the error for NaN/Inf data."""
        a = _channel_rows(data, layout, channel_dim, what)
        scale, shift = [1.0] * layout.num_channels, [0.0] * layout.num_channels
        for i, j in layout.vector_indices:
            s = float(np.sqrt(np.mean(a[i] ** 2 + a[j] ** 2) / 2)) if a.size else 0.0
            scale[i] = scale[j] = s if s > 1e-12 else 1.0
        for i in layout.scalar_indices if scalars else ():
            shift[i] = float(a[i].mean())
            s = float(a[i].std())
            scale[i] = s if s > 1e-12 else 1.0
        return cls(layout, tuple(scale), tuple(shift))

    def normalize_aux(self, aux: torch.Tensor | None) -> torch.Tensor | None:
        """Physical -> network units for aux fields ``(B, C_aux, H, W)`` with :attr:`aux`
        (None stays None; without :attr:`aux` they are used as they are)."""
        if aux is None or self.aux is None:
            return aux
        return self.aux.normalize(aux, channel_dim=-3)

    def _broadcast(self, x: torch.Tensor, values, channel_dim: int) -> torch.Tensor:
        shape = [1] * x.ndim
        shape[channel_dim] = len(values)
        return torch.tensor(values, dtype=x.dtype, device=x.device).reshape(shape)

    def normalize(self, x: torch.Tensor, channel_dim: int = -3) -> torch.Tensor:
        """Physical units -> network units; ``x`` is ``(..., C, H, W)`` by default."""
        return ((x - self._broadcast(x, self.shift, channel_dim))
                / self._broadcast(x, self.scale, channel_dim))

    def denormalize(self, x: torch.Tensor, channel_dim: int = -3) -> torch.Tensor:
        """Network units -> physical units."""
        return (x * self._broadcast(x, self.scale, channel_dim)
                + self._broadcast(x, self.shift, channel_dim))

    def to_dict(self) -> dict:
        d = {"layout": self.layout.to_dict(), "scale": list(self.scale),
             "shift": list(self.shift)}
        if self.aux is not None:
            d["aux"] = self.aux.to_dict()
        if self.delta_scale is not None:
            d["delta_scale"] = list(self.delta_scale)
        if self.lower_bound is not None:  # -inf written as None (JSON has no infinity)
            d["lower_bound"] = [None if b == -math.inf else b for b in self.lower_bound]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        # __post_init__ makes delta_scale and lower_bound (None: -inf) tuples of floats
        return cls(FieldLayout.from_dict(d["layout"]), tuple(map(float, d["scale"])),
                   tuple(map(float, d["shift"])),
                   cls.from_dict(d["aux"]) if d.get("aux") else None,
                   d.get("delta_scale"), d.get("lower_bound"))
