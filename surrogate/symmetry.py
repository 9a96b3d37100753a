"""The group action on fields, torch version (twin of ``simulate/symmetry.py``; a test
keeps the two identical).

Convention: tensors are indexed ``[..., y, x]`` with ``y`` ascending with the row index
(pointing *up* when plotted with ``origin="lower"``). ``g = r^k s^m`` first mirrors
``x -> -x`` (``m = 1``), then rotates by ``k`` counter-clockwise quarter turns about the
centre of the grid. Scalars move with the grid, ``(g f)(p) = f(g^-1 p)``; vectors are
also rotated, ``(g v)(p) = M_g v(g^-1 p)``: one quarter turn maps ``(u, v) -> (-v, u)``.
Regular features (a group axis of length ``|G|``) move with the grid and are permuted,
``(g f)(h, p) = f(g^-1 h, g^-1 p)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .groups import Group

__all__ = ["FieldLayout", "transform_grid", "transform_fields", "transform_regular",
           "DEFAULT_LAYOUT"]


@dataclass(frozen=True)
class FieldLayout:
    """Which channels of a ``(..., C, H, W)`` tensor form vector fields.

    ``channels`` names the channels in order; each pair in ``vectors`` names the (x, y)
    components of one vector field (rho_1); every other channel is a scalar field.
    """

    channels: tuple[str, ...] = ("u", "v", "density")
    vectors: tuple[tuple[str, str], ...] = (("u", "v"),)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "vectors", tuple(tuple(p) for p in self.vectors))
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"duplicate channel names in {self.channels}")
        seen: set[str] = set()
        for pair in self.vectors:
            if len(pair) != 2:
                raise ValueError(f"a vector field needs exactly 2 components, got {pair}")
            for c in pair:
                if c not in self.channels:
                    raise ValueError(f"vector component {c!r} is not one of the channels "
                                     f"{self.channels}")
                if c in seen:
                    raise ValueError(f"channel {c!r} appears in two vector fields")
                seen.add(c)

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    @property
    def vector_indices(self) -> list[tuple[int, int]]:
        return [(self.channels.index(a), self.channels.index(b)) for a, b in self.vectors]

    @property
    def scalar_indices(self) -> list[int]:
        vec = {c for pair in self.vectors for c in pair}
        return [i for i, c in enumerate(self.channels) if c not in vec]

    def to_dict(self) -> dict:
        return {"channels": list(self.channels), "vectors": [list(p) for p in self.vectors]}

    @classmethod
    def from_dict(cls, d: dict) -> "FieldLayout":
        return cls(tuple(d["channels"]), tuple(tuple(p) for p in d["vectors"]))

    @classmethod
    def of(cls, layout: "FieldLayout | dict | None") -> "FieldLayout":
        """``layout`` as a FieldLayout: itself, read from its dict, or the default for
        None; anything else is a ``ValueError``."""
        if layout is None:
            return cls()
        if isinstance(layout, FieldLayout):
            return layout
        if isinstance(layout, dict):
            return cls.from_dict(layout)
        raise ValueError(f"layout must be a FieldLayout or a dict with 'channels' and "
                         f"'vectors', got {type(layout).__name__}")


DEFAULT_LAYOUT = FieldLayout()


def transform_grid(x: torch.Tensor, k: int = 1, flip: bool = False) -> torch.Tensor:
    """Move the samples of ``(..., y, x)`` by ``r^k s^flip`` (``k`` quarter turns)."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-1, -2)) if k % 4 else x


def transform_fields(x: torch.Tensor, layout: FieldLayout = DEFAULT_LAYOUT, k: int = 1,
                     flip: bool = False, channel_dim: int = -3) -> torch.Tensor:
    """Act with ``r^k s^flip`` on fields ``(..., C, ..., H, W)`` laid out as ``layout``.

    ``channel_dim`` indexes the channel axis (default: ``(..., C, H, W)``)."""
    if x.shape[channel_dim] != layout.num_channels:
        raise ValueError(f"expected {layout.num_channels} channels {layout.channels} on "
                         f"dim {channel_dim}, got shape {tuple(x.shape)}")
    y = transform_grid(x, k, flip)
    out = y.clone()
    for i, j in layout.vector_indices:
        u, v = y.select(channel_dim, i), y.select(channel_dim, j)
        if flip:
            u = -u
        for _ in range(k % 4):
            u, v = -v, u
        out.select(channel_dim, i).copy_(u)
        out.select(channel_dim, j).copy_(v)
    return out


def transform_regular(x: torch.Tensor, group: Group, g: tuple[int, int]) -> torch.Tensor:
    """Act with a grid-exact element ``g`` on regular features ``(B, F * |G|, H, W)``
    (field-major channels): move the grid and permute the group axis."""
    b, c, h, w = x.shape
    n = group.order
    if c % n:
        raise ValueError(f"{c} channels is not a multiple of |{group.name}| = {n}")
    y = transform_grid(x, group.quarter_turns(g), bool(g[1])).reshape(b, c // n, n, h, w)
    perm = group.left_regular_permutation[group.index(g)].to(x.device)
    return y[:, :, perm].reshape(b, c, h, w)
