"""Breaking symmetry by inputs (Rapidash, Vadgama et al. 2025): static fields fed to the
network next to the state.

A model built with ``breaking_inputs`` takes, besides the history ``(B, T_in, C, H, W)``,
time-independent *auxiliary* fields ``aux (B, C_aux, H, W)`` laid out as
:func:`aux_layout` says (the channels of ``_LAYOUTS``, in :data:`BREAKING_INPUTS` order):
``frame``, the axes ``(1, 0)`` and ``(0, 1)`` as vectors, and ``coords``, the cell-centre
coordinates in ``(-1, 1)``, are made by the model; ``cause``, the buoyancy vector and
three masks (:data:`CAUSE_VARS`), comes from the data.

Equivariant models lift them like the state (vectors rho_1, scalars trivial), so they
are equivariant in ``(state, aux)`` jointly; ``coords`` never rotate, so they break
equivariance outright (docs/breaking.md).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .normalization import Normalization
from .symmetry import FieldLayout

__all__ = ["BREAKING_INPUTS", "CAUSE_VARS", "canonical_breaking_inputs", "aux_layout",
           "data_layout", "BreakingInputs", "fit_aux_normalization", "read_cause_fields",
           "CauseFieldError"]

#: names of the breaking inputs, in the order their channels are stacked
BREAKING_INPUTS = ("frame", "cause", "coords")

#: the dataset variables (dims ``(sim, y, x)``) that ``cause`` reads; the same names as
#: ``simulate.dataset.CAUSE_VARS`` (surrogate does not import simulate; a test checks it)
CAUSE_VARS = ("buoyancy_x", "buoyancy_y", "inflow_mask", "obstacle_mask", "open_mask")

_LAYOUTS = {
    "frame": FieldLayout(("frame_ex_x", "frame_ex_y", "frame_ey_x", "frame_ey_y"),
                         (("frame_ex_x", "frame_ex_y"), ("frame_ey_x", "frame_ey_y"))),
    "cause": FieldLayout(CAUSE_VARS, (("buoyancy_x", "buoyancy_y"),)),
    "coords": FieldLayout(("coord_x", "coord_y"), ()),
}
_FROM_DATA = ("cause",)


class CauseFieldError(ValueError):
    """Static fields a model needs that a dataset lacks (``missing``) or holds over the
    wrong dims."""

    def __init__(self, message: str, missing: list[str] | None = None):
        super().__init__(message)
        self.missing = list(missing or [])


def read_cause_fields(ds: Any, names: Sequence[str], sims: Sequence[int] | None = None,
                      *, allow_2d: bool = False) -> np.ndarray:
    """The static fields ``names`` of ``ds`` (an ``xarray.Dataset``, or a mapping with
    such variables) over ``(sim, y, x)`` as float32 ``(n, C, y, x)`` -- the one reader of
    cause fields for training, evaluation and forecasting. ``sims``: positions along
    ``sim`` to keep (default all); ``allow_2d``: also accept ``(y, x)`` fields (one
    simulation). Raises :class:`CauseFieldError`."""
    missing = [c for c in names if c not in ds]
    if missing:
        raise CauseFieldError(f"missing variable(s) {missing}", missing)
    out = []
    for c in names:
        var = ds[c]
        dims = set(getattr(var, "dims", ()))
        if dims == {"sim", "y", "x"}:
            arr = var.transpose("sim", "y", "x").values
        elif allow_2d and dims == {"y", "x"}:
            arr = var.transpose("y", "x").values[None]
        else:
            raise CauseFieldError(f"variable {c!r} has dims {tuple(getattr(var, 'dims', ()))}, "
                                  "expected ('sim', 'y', 'x')")
        out.append(arr if sims is None else arr[np.asarray(sims, dtype=int)])
    return np.stack(out, axis=1).astype(np.float32, copy=False)


def canonical_breaking_inputs(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """Validate ``names`` (a sequence, or a comma-separated string such as
    ``"cause,frame"``) and return them without duplicates in :data:`BREAKING_INPUTS`
    order."""
    if names is None:
        return ()
    if isinstance(names, str):
        names = [n for n in names.replace(" ", "").split(",") if n]
    names = [str(n) for n in names]
    unknown = [n for n in names if n not in BREAKING_INPUTS]
    if unknown:
        raise ValueError(f"unknown breaking input(s) {unknown}; choose from "
                         f"{list(BREAKING_INPUTS)}")
    return tuple(n for n in BREAKING_INPUTS if n in names)


def aux_layout(names: str | Iterable[str] | None, data_only: bool = False) -> FieldLayout:
    """Layout of all aux channels of ``names`` (empty layout for none), or with
    ``data_only`` of those that must come from the data (:func:`data_layout`)."""
    lays = [_LAYOUTS[n] for n in canonical_breaking_inputs(names)
            if n in _FROM_DATA or not data_only]
    return FieldLayout(tuple(c for lay in lays for c in lay.channels),
                       tuple(v for lay in lays for v in lay.vectors))


def data_layout(names: str | Iterable[str] | None) -> FieldLayout:
    """Layout of the aux channels that must come from the data (those of ``cause``)."""
    return aux_layout(names, data_only=True)


def _built_fields(name: str, batch: int, h: int, w: int, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor:
    """The fields of ``frame`` or ``coords``, ``(batch, C, h, w)``."""
    if name == "frame":
        axes = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=dtype, device=device)
        return axes.reshape(1, 4, 1, 1).expand(batch, 4, h, w)
    xs = (2 * torch.arange(w, dtype=dtype, device=device) + 1) / w - 1
    ys = (2 * torch.arange(h, dtype=dtype, device=device) + 1) / h - 1
    grid = torch.stack([xs.reshape(1, w).expand(h, w), ys.reshape(h, 1).expand(h, w)])
    return grid.unsqueeze(0).expand(batch, 2, h, w)


class BreakingInputs(nn.Module):
    """Assembles the aux fields ``(B, C_aux, H, W)`` of a model's breaking inputs.

    ``forward(aux, batch, h, w, dtype, device)`` accepts ``aux`` holding either every
    channel of :attr:`layout` (used as given, e.g. to rotate the frame in a test), or
    only those of :attr:`data_layout` (the ``cause`` fields; ``frame`` and ``coords`` are
    then made here), or None when no input needs data. A batch of 1 is broadcast.
    Parameter- and buffer-free: it adds nothing to a model's ``state_dict``."""

    def __init__(self, names: str | Iterable[str] | None = ()) -> None:
        super().__init__()
        self.names = canonical_breaking_inputs(names)
        self.layout = aux_layout(self.names)
        self.data_layout = data_layout(self.names)

    @property
    def num_channels(self) -> int:
        """Channels the breaking inputs add to the network's input."""
        return self.layout.num_channels

    def _fail(self, msg: str) -> None:
        need = (f"the data fields {list(self.data_layout.channels)}"
                if self.data_layout.num_channels else "no data fields")
        raise ValueError(f"{msg}; breaking_inputs {list(self.names)} need aux (B, C, H, W) "
                         f"holding {need} (or all of {list(self.layout.channels)})")

    def forward(self, aux: torch.Tensor | None, batch: int, h: int, w: int,
                dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        n_all, n_data = self.layout.num_channels, self.data_layout.num_channels
        if aux is None and n_data:
            self._fail(f"aux fields are missing (breaking input 'cause' needs "
                       f"{list(self.data_layout.channels)})")
        if aux is not None:
            if aux.dim() != 4 or aux.shape[0] not in (1, batch) or \
                    tuple(aux.shape[-2:]) != (h, w) or aux.shape[1] not in (n_all, n_data):
                self._fail(f"got aux of shape {tuple(aux.shape)} for a batch of {batch} on "
                           f"a {h}x{w} grid")
            aux = aux.to(device=device, dtype=dtype).expand(batch, -1, h, w)
            if aux.shape[1] == n_all:
                return aux
        c = 0
        parts = [torch.zeros(batch, 0, h, w, dtype=dtype, device=device)]
        for name in self.names:
            if name in _FROM_DATA:
                k = _LAYOUTS[name].num_channels
                parts.append(aux[:, c:c + k])
                c += k
            else:
                parts.append(_built_fields(name, batch, h, w, dtype, device))
        return torch.cat(parts, dim=1)

    def extra_repr(self) -> str:
        return f"names={list(self.names)}, channels={self.layout.num_channels}"


def fit_aux_normalization(aux, layout: FieldLayout, channel_dim: int = 1) -> Normalization:
    """Normalisation of data aux fields ``(N, C, H, W)`` laid out as ``layout``: each
    vector field is divided by one magnitude (RMS of its components over all samples and
    cells, as for state vectors) and never shifted; scalars (the masks) are left as they
    are (scale 1, shift 0)."""
    return Normalization.fit(aux, layout, channel_dim, scalars=False,
                             what="the aux normalisation")
