"""The group action on stored fields, numpy version (the convention lives here and in
``surrogate/symmetry.py``; a test keeps the two identical).

Convention
----------
Arrays are indexed ``[..., y, x]`` with ``y`` ascending with the row index (``y`` points
*up* when plotted with ``origin="lower"``) and ``x`` ascending with the column index.
``u`` is the x component and ``v`` the y component of the velocity, both stored at the
cell centres, the same grid as ``density``.

A group element ``g = r^k s^m`` (``k`` quarter turns, ``m`` in {0, 1}) acts by first
mirroring ``x -> -x`` when ``m = 1`` and then rotating by ``k * 90`` degrees
*counter-clockwise* about the centre of the box. On a square grid with cell-centred
samples the centre is the middle of the array, so samples map onto samples exactly.
A scalar field transforms as ``(g f)(p) = f(g^-1 p)``, a vector field as
``(g v)(p) = M_g v(g^-1 p)`` with ``M_g = R(k * 90deg) @ diag(-1, 1)^m``.
For one counter-clockwise quarter turn, ``(u, v) -> (-v, u)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rotate_grid", "flip_grid", "transform_grid", "transform_vector", "transform_fields"]


def rotate_grid(a: np.ndarray, k: int = 1) -> np.ndarray:
    """Rotate an array ``(..., y, x)`` by ``k`` counter-clockwise quarter turns."""
    return np.rot90(a, k % 4, axes=(-1, -2))


def flip_grid(a: np.ndarray) -> np.ndarray:
    """Mirror an array ``(..., y, x)`` across the vertical axis (``x -> -x``)."""
    return a[..., ::-1]


def transform_grid(a: np.ndarray, k: int = 1, flip: bool = False) -> np.ndarray:
    """Move the samples of ``(..., y, x)`` by ``g = r^k s^flip`` (no change of components)."""
    return rotate_grid(flip_grid(a) if flip else a, k)


def transform_vector(u, v, k: int = 1, flip: bool = False):
    """Apply ``M_g`` to vector components ``(u, v)`` (arrays or numbers), no grid move."""
    if flip:
        u = -u
    for _ in range(k % 4):
        u, v = -v, u
    return u, v


def transform_fields(u: np.ndarray, v: np.ndarray, density: np.ndarray | None = None,
                     k: int = 1, flip: bool = False):
    """Act with ``g = r^k s^flip`` on a velocity field ``(u, v)`` and an optional scalar
    field, all shaped ``(..., y, x)``. Returns ``(u', v')`` or ``(u', v', density')``."""
    out = transform_vector(transform_grid(u, k, flip), transform_grid(v, k, flip), k, flip)
    if density is not None:
        out += (transform_grid(density, k, flip),)
    return tuple(np.ascontiguousarray(a) for a in out)
