"""Finite groups acting on the pixel grid: the trivial group, C_N and D_N.

An element ``g = r^k s^m`` is stored as the pair ``(k, m)``: first mirror ``x -> -x``
when ``m = 1``, then rotate by ``k * 360/N`` degrees counter-clockwise (see
``surrogate.symmetry`` for the convention on arrays). Elements are indexed
``index = m * N + k``; this is the order of the group axis of every regular feature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

__all__ = ["Group", "get_group", "GROUPS"]


@dataclass(frozen=True)
class Group:
    """``C_N`` (``flips=False``) or ``D_N`` (``flips=True``); ``C1`` is the trivial group."""

    name: str
    n_rotations: int
    flips: bool

    @property
    def order(self) -> int:
        """``|G|``."""
        return self.n_rotations * (2 if self.flips else 1)

    @property
    def elements(self) -> list[tuple[int, int]]:
        """All ``(k, m)`` in index order."""
        return [(k, m) for m in range(2 if self.flips else 1) for k in range(self.n_rotations)]

    def index(self, g: tuple[int, int]) -> int:
        k, m = g
        return m * self.n_rotations + (k % self.n_rotations)

    def compose(self, a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
        """``a * b`` using ``s r s = r^-1``."""
        (k1, m1), (k2, m2) = a, b
        return ((k1 + (-k2 if m1 else k2)) % self.n_rotations, (m1 + m2) % 2)

    def inverse(self, g: tuple[int, int]) -> tuple[int, int]:
        k, m = g
        return (k, 1) if m else ((-k) % self.n_rotations, 0)

    def is_grid_exact(self, g: tuple[int, int]) -> bool:
        """True when ``g`` maps pixel centres of a square grid onto pixel centres."""
        return (g[0] * 4) % self.n_rotations == 0

    def quarter_turns(self, g: tuple[int, int]) -> int:
        """Number of 90-degree turns of a grid-exact element."""
        if not self.is_grid_exact(g):
            raise ValueError(f"{self.name} element {g} is not a multiple of 90 degrees; "
                             "it does not act exactly on a pixel grid")
        return (g[0] * 4) // self.n_rotations

    @property
    def grid_elements(self) -> list[tuple[int, int]]:
        """The elements that act exactly on a square pixel grid (the C4/D4 part)."""
        return [g for g in self.elements if self.is_grid_exact(g)]

    def matrix(self, g: tuple[int, int]) -> torch.Tensor:
        """``M_g`` acting on (x, y) vector components, shape (2, 2), float64."""
        k, m = g
        t = 2 * math.pi * k / self.n_rotations
        rot = torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]],
                           dtype=torch.float64)
        flip = torch.tensor([[-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        return rot @ flip if m else rot

    @cached_property
    def left_regular_permutation(self) -> torch.Tensor:
        """``P[a, h] = index(a^-1 h)``: regular feature ``f`` acted on by ``a`` is
        ``f[..., P[a], ...]``, shape (|G|, |G|), long."""
        els = self.elements
        return torch.tensor([[self.index(self.compose(self.inverse(a), h)) for h in els]
                             for a in els], dtype=torch.long)

    @cached_property
    def directions(self) -> torch.Tensor:
        """``M_h e_1`` for every element ``h``: the unit vectors used to lift a vector to a
        regular feature, shape (|G|, 2), float64."""
        return torch.stack([self.matrix(h)[:, 0] for h in self.elements])


GROUPS = {
    "trivial": Group("trivial", 1, False),
    "C4": Group("C4", 4, False),
    "D4": Group("D4", 4, True),
    "C8": Group("C8", 8, False),
}


def get_group(name: str) -> Group:
    """Look up a group by name: ``trivial``, ``C4``, ``D4`` or ``C8``."""
    try:
        return GROUPS[name]
    except KeyError:
        raise ValueError(f"unknown group {name!r}; choose one of {sorted(GROUPS)}") from None
