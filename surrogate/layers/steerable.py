"""Steerable convolution between regular fields, with the kernel basis taken from escnn.

The equivariant kernel space for one regular(G) -> regular(G) field pair is spanned by a
basis ``Phi`` of shape ``(n_basis, |G|, |G|, k, k)`` (escnn's ``R2Conv`` basis on
``rot2dOnR2(N)`` / ``flipRot2dOnR2(N)``, converted to relaxflow's convention); a layer
keeps coefficients ``w`` and expands ``W[o, g, i, h] = sum_b w[o, i, b] Phi[b, g, h]``.

Conventions, measured on escnn 1.0.11 (``tests/surrogate/test_steerable.py`` re-checks
them): escnn lays arrays out as ``[-Y, X]`` (rows go *down*), relaxflow as ``[y, x]``
with ``y`` up, so the two frames differ by ``y -> -y``. Conjugating by that mirror turns
escnn's counter-clockwise rotation ``r^k`` into our clockwise one and leaves the mirror
``x -> -x`` (escnn's default reflection axis pi/2) unchanged. Hence our element ``(k, m)``
(mirror, then rotate by ``k`` counter-clockwise) *is* escnn's element ``(m, -k mod N)``
acting on the same array: the spatial axes of escnn's filters are used as they are and
only the group axes are re-indexed (``escnn_index``). escnn samples its basis in float32;
we project it in float64 onto the kernels that are exactly invariant under the grid-exact
elements (all of C4/D4, the quarter turns of C8), which makes the layers equivariant to
rounding error in any dtype and doubles as a check of the conversion.
"""

from __future__ import annotations

import importlib
import math
import threading
import warnings

import torch
from torch import nn

from ..groups import Group, get_group
from ..symmetry import transform_grid
from .regular import RegularConv

__all__ = ["SteerableConv", "steerable_basis", "escnn_basis_converted", "escnn_index",
           "escnn_gspace", "init_steerable_coefficients"]

_BASIS_CACHE: dict[tuple[str, int], torch.Tensor] = {}
_BASIS_LOCK = threading.Lock()
# A basis whose float32 sampling deviates from exact grid symmetry by more than this
# (relative) means the conversion from escnn's convention is wrong.
_CONVENTION_TOL = 1e-4


def _as_group(group: Group | str) -> Group:
    return get_group(group) if isinstance(group, str) else group


def _escnn(module: str):
    """``escnn.<module>``, imported without escnn's import-time warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(f"escnn.{module}")


def escnn_gspace(group: Group | str):
    """escnn's ``GSpace`` for ``group``: ``rot2dOnR2(N)`` or ``flipRot2dOnR2(N)``
    (reflection axis pi/2, i.e. ``x -> -x``)."""
    group, gspaces = _as_group(group), _escnn("gspaces")
    if group.flips:
        return gspaces.flipRot2dOnR2(group.n_rotations, axis=math.pi / 2)
    return gspaces.rot2dOnR2(group.n_rotations)


def escnn_index(group: Group | str, gspace=None) -> torch.Tensor:
    """``idx[index(g)]`` = position of ``g``'s escnn twin in escnn's regular representation,
    shape (|G|,), long. Checks that escnn's regular representation is the left regular
    one, ``rho(a) e_h = e_{ah}``, with basis vectors ordered like ``fibergroup.elements``."""
    group = _as_group(group)
    fg = (escnn_gspace(group) if gspace is None else gspace).fibergroup
    els = list(fg.elements)
    pos = {e: i for i, e in enumerate(els)}
    reg = fg.regular_representation
    for a in els:
        m = reg(a)
        for h in els:
            if abs(m[pos[a @ h], pos[h]] - 1.0) > 1e-9:
                raise RuntimeError("escnn's regular representation is not the left regular "
                                   "representation in element order; update escnn_index")
    n = group.n_rotations
    return torch.tensor([pos[fg.element((m, (-k) % n) if group.flips else (-k) % n)]
                         for k, m in group.elements], dtype=torch.long)


def _kernel_action(x: torch.Tensor, group: Group, g: tuple[int, int]) -> torch.Tensor:
    """``(g . K)[.., a, b, p] = K[.., g^-1 a, g^-1 b, g^-1 p]`` on kernels ``(.., |G|, |G|, k, k)``.
    A convolution between regular fields is equivariant iff its kernel is invariant."""
    perm = group.left_regular_permutation[group.index(g)]
    x = x.index_select(-4, perm).index_select(-3, perm)
    return transform_grid(x, group.quarter_turns(g), bool(g[1]))


def _symmetrize(phi: torch.Tensor, group: Group) -> tuple[torch.Tensor, float]:
    """Project ``phi`` (n, |G|, |G|, k, k) onto the kernels invariant under the grid-exact
    elements, then copy one value per orbit so the invariance holds bitwise.
    Returns the projection and the relative size of the removed part."""
    els = group.grid_elements
    avg = sum(_kernel_action(phi, group, g) for g in els) / len(els)
    shape = phi.shape[1:]
    ids = torch.arange(math.prod(shape)).reshape(shape).double()
    canon = torch.stack([_kernel_action(ids, group, g) for g in els]).amin(0).long()
    exact = avg.flatten(1)[:, canon.flatten()].reshape(phi.shape)
    return exact, float((phi - exact).norm() / phi.norm())


def escnn_basis_converted(group: Group | str, kernel_size: int = 3) -> torch.Tensor:
    """escnn's raw (float32-sampled) basis with its group axes re-indexed into relaxflow's
    convention, before the exact projection; ``(n_basis, |G|, |G|, k, k)`` float64."""
    group, enn = _as_group(group), _escnn("nn")
    gs = escnn_gspace(group)
    ftype = enn.FieldType(gs, [gs.fibergroup.regular_representation])
    conv = enn.R2Conv(ftype, ftype, kernel_size, padding=kernel_size // 2, bias=False,
                      initialize=False)
    n_basis = conv.basisexpansion.dimension()
    eye = torch.eye(n_basis, dtype=conv.weights.dtype)
    with torch.no_grad():
        phi = torch.stack([conv.basisexpansion(eye[b]) for b in range(n_basis)])
    n = group.order
    phi = phi.reshape(n_basis, n, n, kernel_size, kernel_size).double()
    idx = escnn_index(group, gs)
    return phi[:, idx][:, :, idx]  # escnn group axes -> ours; spatial axes already agree


def steerable_basis(group: Group | str, kernel_size: int = 3) -> torch.Tensor:
    """The steerable kernel basis for one regular(G) -> regular(G) field pair in
    relaxflow's convention: ``Phi[b, g, h, y, x]``, shape ``(n_basis, |G|, |G|, k, k)``,
    float64, a fresh copy (built once per ``(group, k)`` and cached; escnn is slow)."""
    group = _as_group(group)
    key = (group.name, int(kernel_size))
    with _BASIS_LOCK:
        if key not in _BASIS_CACHE:
            phi, rel = _symmetrize(escnn_basis_converted(group, kernel_size), group)
            if rel > _CONVENTION_TOL:
                raise RuntimeError(f"escnn's {group.name} basis is not equivariant in "
                                   f"relaxflow's convention after conversion (relative "
                                   f"residual {rel:.2e}); escnn's conventions have changed")
            _BASIS_CACHE[key] = phi
        return _BASIS_CACHE[key].clone()


def init_steerable_coefficients(phi: torch.Tensor, out_fields: int, in_fields: int,
                                generator: torch.Generator | None = None) -> torch.Tensor:
    """Random coefficients ``(F_out, F_in, n_basis)`` for basis ``phi`` scaled by fan-in so a
    unit-variance input gives outputs of about unit variance:
    ``Var = 1 / (F_in * mean_g sum_{b,h,y} Phi[b,g,h,y]^2)``."""
    energy = phi.double().pow(2).sum(dim=(0, 2, 3, 4)).mean()
    std = 1.0 / math.sqrt(in_fields * float(energy))
    w = torch.randn(out_fields, in_fields, phi.shape[0], generator=generator,
                    dtype=torch.float64)
    return (w * std).to(torch.get_default_dtype())


class SteerableConv(RegularConv):
    """Steerable convolution regular(G) fields -> regular(G) fields, G in C4, D4, C8.

    Parameters: ``weight`` ``(F_out, F_in, n_basis)`` and a per-field ``bias``; buffer
    ``Phi`` ``(n_basis, |G|, |G|, k, k)`` (not saved in the state dict: it is rebuilt).
    Input ``(B, F_in |G|, H, W)`` -> ``(B, F_out |G|, H, W)``.
    """

    def __init__(self, group: Group | str, in_fields: int, out_fields: int,
                 kernel_size: int = 3, bias: bool = True) -> None:
        group = _as_group(group)
        super().__init__(group, in_fields, out_fields, kernel_size, bias)
        phi = steerable_basis(group, kernel_size)
        self.register_buffer("Phi", phi.to(torch.get_default_dtype()), persistent=False)
        self.weight = nn.Parameter(init_steerable_coefficients(phi, out_fields, in_fields))

    @property
    def n_basis(self) -> int:
        return self.Phi.shape[0]

    def expand_filter(self) -> torch.Tensor:
        n, k = self.group.order, self.kernel_size
        w = torch.einsum("oib,bghyx->ogihyx", self.weight, self.Phi.to(self.weight.dtype))
        return w.reshape(self.out_fields * n, self.in_fields * n, k, k)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_basis={self.n_basis}"
