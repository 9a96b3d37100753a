"""The forecast API: a trained checkpoint as a plain Python object.

>>> model = surrogate.load("runs/rg/best.pt", device="cpu")
>>> pred = model.forecast(history, steps=50)     # history: xarray.Dataset (sim, time, y, x)

A model with the ``cause`` breaking input also needs the simulation's static cause
fields (:data:`surrogate.breaking.CAUSE_VARS`), from the history Dataset or ``aux=``.
"""

from __future__ import annotations

import itertools
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import xarray as xr
from torch import nn

from .breaking import CauseFieldError, data_layout, read_cause_fields
from .checkpoint import CheckpointError, model_from_checkpoint, read_checkpoint
from .devices import resolve_device
from .normalization import Normalization
from .records import ModelConfig, TrainingRecord
from .rollout import autoregress
from .symmetry import FieldLayout

__all__ = ["Surrogate", "load", "ForecastError", "NonFiniteForecastWarning"]


class ForecastError(ValueError):
    """History that does not fit the model (grid, frames, variables, layout)."""


class NonFiniteForecastWarning(RuntimeWarning):
    """A forecast that holds NaN or Inf (the rollout diverged)."""


_AUX_FORMS = "(a Dataset, a dict of arrays or a (B, C, H, W) array)"


class Surrogate(nn.Module):
    """A trained surrogate: the network, its normalisation and its metadata.

    ``forward`` is the raw network ``(B, T_in, C, H, W) [, aux] -> (B, C, H, W)`` in
    normalised units; :meth:`rollout` and :meth:`forecast` work in physical units.
    """

    def __init__(self, model: nn.Module, normalization: Normalization | None = None,
                 metadata: dict | None = None, path: str | None = None) -> None:
        super().__init__()
        self.model = model
        config = model.config
        self.name: str = config["name"]
        self.T_in: int = int(config.get("T_in", ModelConfig.T_in))
        self.layout = FieldLayout.of(config.get("layout"))
        self.normalization = normalization or Normalization.identity(self.layout)
        self.breaking_inputs: tuple[str, ...] = tuple(config.get("breaking_inputs", ()))
        self.aux_layout = data_layout(self.breaking_inputs)
        aux_norm = self.normalization.aux
        if aux_norm is not None and aux_norm.layout != self.aux_layout:
            raise ForecastError(f"the aux normalisation is for {aux_norm.layout.channels}, "
                                f"the model needs {self.aux_layout.channels}")
        gain = getattr(model, "delta_scale", None)
        if self.normalization.delta_scale is not None and gain is not None and not \
                np.allclose(gain.detach().cpu().numpy(), self.normalization.delta_gain,
                            rtol=1e-5):
            raise ForecastError(f"the model's residual scale {gain.tolist()} does not match "
                                f"its normalisation's delta_scale / scale "
                                f"{list(self.normalization.delta_gain)}")
        self.metadata = dict(metadata or {})
        #: the typed view of ``metadata`` (what training recorded)
        self.record = TrainingRecord.from_dict(self.metadata)
        self.path = path
        # (weights fingerprint, exported net); kept off the module tree so that
        # state_dict()/to() see only the wrapped model
        object.__setattr__(self, "_export_cache", None)
        # (the export traced, {input shapes: frozen trace}); holding the export keeps a
        # newer one from being mistaken for it
        object.__setattr__(self, "_frozen_cache", (None, {}))

    @property
    def grid(self) -> tuple[int, int] | None:
        """``(H, W)`` the model was trained on, when the checkpoint records it."""
        return self.record.grid

    @property
    def dt(self) -> float | None:
        """Physical time between two frames of the training data, when recorded."""
        return self.record.dt

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def aux_channels(self) -> tuple[str, ...]:
        """Names of the static fields the model needs from the data (empty: none)."""
        return self.aux_layout.channels

    def forward(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x) if aux is None else self.model(x, aux)

    def normalize_aux(self, aux: torch.Tensor) -> torch.Tensor:
        """Physical -> network units for aux fields ``(B, C_aux, H, W)``."""
        return self.normalization.normalize_aux(aux)

    def aux_tensor(self, aux: Any, batch: int, grid: tuple[int, int]) -> torch.Tensor | None:
        """The model's data aux fields as a float32 ``(batch, C_aux, H, W)`` tensor in
        physical units (None when the model needs none; ``aux`` is then ignored).

        ``aux``: an ``xarray.Dataset`` holding the variables :attr:`aux_channels` over
        ``(sim, y, x)`` or ``(y, x)``, a mapping name -> array ``(B, H, W)`` / ``(H, W)``,
        or an array ``(B, C_aux, H, W)`` / ``(C_aux, H, W)``; a batch of 1 is repeated."""
        names = list(self.aux_channels)
        if not names:
            return None
        if aux is None:
            raise self._cause_error(f"pass them with aux= {_AUX_FORMS} or use a history "
                                    "Dataset that holds them")
        if isinstance(aux, (xr.Dataset, Mapping)):
            missing = [v for v in names if v not in aux]
            if missing:
                raise self._cause_error(f"{missing} are missing")
            if isinstance(aux, xr.Dataset):
                try:
                    arr = read_cause_fields(aux, names, allow_2d=True)
                except CauseFieldError as e:
                    raise ForecastError(f"cause fields: {e}") from None
            else:  # a mapping name -> array (B, H, W) / (H, W)
                arrs = [np.asarray(aux[v], dtype=np.float32) for v in names]
                if len({a.ndim for a in arrs}) != 1:
                    raise ForecastError(f"cause fields {names} have different numbers of "
                                        "dims")
                arr = np.stack(arrs, axis=-3)
            t = torch.from_numpy(np.ascontiguousarray(arr))
        else:
            t = aux if torch.is_tensor(aux) else torch.as_tensor(np.asarray(aux))
            t = t.detach().float().cpu()
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4 or t.shape[1] != len(names) or tuple(t.shape[-2:]) != tuple(grid) \
                or t.shape[0] not in (1, batch):
            raise ForecastError(f"cause fields must be ({batch}, {len(names)}, {grid[0]}, "
                                f"{grid[1]}) for {names}, got shape {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise ForecastError("the cause fields contain NaN or Inf")
        return t.expand(batch, -1, -1, -1).float()

    def _cause_error(self, detail: str) -> ForecastError:
        return ForecastError(f"model {self.name!r} uses breaking_inputs "
                             f"{list(self.breaking_inputs)} and needs the cause fields "
                             f"{list(self.aux_channels)}; {detail}")

    def exported(self) -> nn.Module:
        """The inference module with expanded kernels: built on first use and rebuilt
        when a parameter or buffer of the wrapped model is replaced, moved or modified in
        place (an optimiser step, ``load_state_dict``, ``.to(device)``). Not a submodule,
        so it never appears in :meth:`state_dict`."""
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device)
                    for t in itertools.chain(self.model.parameters(), self.model.buffers()))
        if self._export_cache is None or self._export_cache[0] != key:
            export = getattr(self.model, "export", None)
            with torch.no_grad():
                net = (export() if export is not None else self.model).eval()
            object.__setattr__(self, "_export_cache", (key, net))
        return self._export_cache[1]

    def frozen(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> nn.Module:
        """:meth:`exported`, traced for inputs shaped like ``x (B, T_in, C, H, W)`` (and
        ``aux``) and frozen (``torch.jit.freeze``: weights become constants, so a CPU runs
        prepacked oneDNN convolutions). Cached per input shape; rebuilt with the export.
        Its outputs equal the exported module's to float32 tolerance (tested)."""
        net = self.exported()
        if self._frozen_cache[0] is not net:  # traces of an earlier export are stale
            object.__setattr__(self, "_frozen_cache", (net, {}))
        cache = self._frozen_cache[1]
        key = (tuple(x.shape), None if aux is None else tuple(aux.shape))
        if key not in cache:
            args = (x,) if aux is None else (x, aux)
            # shape checks become constants (intended: one trace per shape); torch.jit
            # is deprecated in torch 2.13, kept while torch.export is not as fast on a CPU
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                traced = torch.jit.trace(net, args, check_trace=False)
                cache[key] = torch.jit.freeze(traced.eval())
        return cache[key]

    def _check_tensor(self, history: torch.Tensor) -> None:
        if not torch.is_tensor(history):
            raise ForecastError(f"history must be a tensor (B, T, C, H, W), got "
                                f"{type(history).__name__}")
        if history.ndim != 5:
            raise ForecastError(f"history must be (B, T, C, H, W), got shape "
                                f"{tuple(history.shape)}")
        b, t, c, h, w = history.shape
        if b < 1:
            raise ForecastError("history holds no simulation (B = 0)")
        if t < self.T_in:
            raise ForecastError(f"model {self.name!r} needs at least T_in={self.T_in} "
                                f"frames of history, got {t}")
        if c != self.layout.num_channels:
            raise ForecastError(f"model expects {self.layout.num_channels} channels "
                                f"{self.layout.channels}, got {c}")
        if self.grid is not None and (h, w) != self.grid:
            raise ForecastError(f"model {self.name!r} was trained on a {self.grid[0]}x"
                                f"{self.grid[1]} grid, history is {h}x{w}")
        if not torch.isfinite(history).all():
            raise ForecastError("history contains NaN or Inf")

    @torch.no_grad()
    def rollout(self, history: torch.Tensor, steps: int, aux: Any = None,
                batch_size: int = 64, exported: bool = True,
                frozen: bool = False) -> torch.Tensor:
        """Autoregressive forecast in physical units: ``(B, T, C, H, W)`` history ->
        ``(B, steps, C, H, W)`` predicted frames (the history not included); ``aux``:
        the cause fields, as :meth:`aux_tensor` takes them. ``frozen``: run the traced,
        frozen export (:meth:`frozen`; faster on a CPU, traced once per batch shape). A
        forecast that holds NaN or Inf (a diverged rollout) comes with a
        :class:`NonFiniteForecastWarning`."""
        pred = self._rollout(history, steps, aux, batch_size, exported, frozen)
        _warn_non_finite(pred, stacklevel=3)  # the caller, past the no_grad wrapper
        return pred

    @torch.no_grad()
    def _rollout(self, history: torch.Tensor, steps: int, aux: Any, batch_size: int,
                 exported: bool, frozen: bool = False) -> torch.Tensor:
        """:meth:`rollout` without the warning."""
        _check_count("steps", steps)
        _check_count("batch_size", batch_size)
        self._check_tensor(history)
        aux = self.aux_tensor(aux, history.shape[0], tuple(history.shape[-2:]))
        net = self.exported() if exported else self.model.eval()
        dev = self.device
        outs = []
        for start in range(0, history.shape[0], batch_size):
            x = history[start:start + batch_size, -self.T_in:].to(dev, torch.float32)
            x = self.normalization.normalize(x)
            a = None if aux is None else self.normalize_aux(
                aux[start:start + batch_size].to(dev))
            step = self.frozen(x, a) if frozen else net
            pred = self.normalization.denormalize(autoregress(step, x, steps, a))
            # the frames returned are bounded (density >= 0); the model goes on from its
            # own unbounded predictions, as in training. Where the truth obeys the bound
            # this can only lower every cell's error (|max(p, b) - t| <= |p - t|);
            # feeding the bounded frames back made some rollouts worse (docs/train.md)
            pred = self.normalization.apply_lower_bound(pred)
            outs.append(pred.cpu())
        return torch.cat(outs)

    def _history_to_tensor(self, history: Any) -> tuple[torch.Tensor, xr.Dataset | None]:
        if isinstance(history, xr.DataArray):
            if history.name is not None and history.name in self.layout.channels \
                    and self.layout.num_channels > 1:
                raise ForecastError(f"a single DataArray {history.name!r} cannot feed a "
                                    f"model of channels {self.layout.channels}; pass a "
                                    "Dataset")
            history = history.to_dataset(dim="channel") if "channel" in history.dims \
                else history.to_dataset()
        if isinstance(history, xr.Dataset):
            missing = [v for v in self.layout.channels if v not in history.data_vars]
            if missing:
                raise ForecastError(f"history lacks variable(s) {missing}; the model "
                                    f"needs {list(self.layout.channels)}")
            ds = history if "sim" in history.dims else history.expand_dims("sim")
            for dim in ("time", "y", "x"):
                if dim not in ds.dims:
                    raise ForecastError(f"history lacks dimension {dim!r} (dims: "
                                        f"{dict(ds.sizes)})")
            for v in self.layout.channels:
                extra = [d for d in ds[v].dims if d not in ("sim", "time", "y", "x")]
                if extra:
                    raise ForecastError(f"history variable {v!r} has extra dimension(s) "
                                        f"{extra}; expected (sim, time, y, x) or (time, y, "
                                        "x): select or stack them first")
            if ds.sizes["sim"] == 0 or ds.sizes["time"] == 0:
                raise ForecastError(f"history is empty (dims: {dict(ds.sizes)})")
            _check_increasing(ds)
            arr = np.stack([ds[v].transpose("sim", "time", "y", "x").values
                            for v in self.layout.channels], axis=2)
            return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)), ds
        if history is None or isinstance(history, (dict, str, bytes)):
            raise ForecastError(f"history must be an xarray Dataset/DataArray or an array "
                                f"(B, T, C, H, W) / (T, C, H, W), got "
                                f"{type(history).__name__}")
        try:
            t = (history if torch.is_tensor(history)
                 else torch.from_numpy(np.asarray(history, dtype=np.float32)))
        except (TypeError, ValueError) as e:
            raise ForecastError(f"history cannot be read as a numeric array "
                                f"(B, T, C, H, W): {e}") from None
        if t.ndim == 4:
            if t.shape[1] != self.layout.num_channels:
                raise ForecastError(
                    f"a 4-D history is read as (T, C, H, W), but its axis 1 has "
                    f"{t.shape[1]} entries and the model has {self.layout.num_channels} "
                    f"channels {list(self.layout.channels)}; pass (B, T, C, H, W)")
            t = t[None]
        return t.float(), None

    @torch.no_grad()
    def forecast(self, history: Any, steps: int = 20, aux: Any = None,
                 batch_size: int = 64) -> xr.Dataset:
        """Continue ``history`` by ``steps`` frames: a Dataset ``(sim, time, y, x)`` of the
        predicted frames only, with the history's coords, a continued ``time`` and the
        model in ``attrs``.

        ``history``: an ``xarray.Dataset`` with the model's variables on dims
        ``(sim, time, y, x)`` or ``(time, y, x)``, a DataArray with a ``channel`` dim, or
        a tensor/array ``(B, T, C, H, W)`` / ``(T, C, H, W)``; its last ``T_in`` frames
        are used. Cause fields come from the history Dataset unless ``aux`` gives them.
        A Dataset's ``time``, ``y`` and ``x`` must increase (as in a dataset file). A
        forecast that holds NaN or Inf comes with a :class:`NonFiniteForecastWarning`."""
        x, ds = self._history_to_tensor(history)
        if aux is None and ds is not None and self.aux_channels:
            missing = [v for v in self.aux_channels if v not in ds.data_vars]
            if missing:
                raise self._cause_error(f"the history Dataset lacks {missing}: pass them "
                                        f"with aux= {_AUX_FORMS}")
            aux = ds
        pred_t = self._rollout(x, steps, aux, batch_size, True)
        _warn_non_finite(pred_t, stacklevel=3)
        pred = pred_t.numpy()
        dt = self.dt
        if ds is not None and "time" in ds.coords and ds.sizes["time"] >= 2:
            times = np.asarray(ds["time"].values, dtype=np.float64)
            hist_dt = float(times[-1] - times[-2])
            if dt is not None and not np.isclose(hist_dt, dt, rtol=1e-3):
                raise ForecastError(f"history frames are {hist_dt:g} apart in time but the "
                                    f"model was trained on frames {dt:g} apart")
            dt, t0 = hist_dt, float(times[-1])
        else:
            dt = dt if dt is not None else 1.0
            t0 = float(ds["time"].values[-1]) if ds is not None and "time" in ds.coords \
                else (x.shape[1] - 1) * dt
        times = t0 + dt * np.arange(1, steps + 1)
        coords: dict[str, Any] = {"time": ("time", times)}
        if ds is not None:
            coords.update((name, c) for name, c in ds.coords.items()
                          if name != "time" and "time" not in c.dims)
        nsim, _, _, h, w = pred.shape
        coords.setdefault("sim", ("sim", np.arange(nsim)))
        coords.setdefault("y", ("y", np.arange(h) + 0.5))
        coords.setdefault("x", ("x", np.arange(w) + 0.5))
        data_vars = {name: (("sim", "time", "y", "x"), pred[:, :, i],
                            dict(ds[name].attrs) if ds is not None else {})
                     for i, name in enumerate(self.layout.channels)}
        out = xr.Dataset(data_vars, coords=coords)
        if ds is not None:
            out["time"].attrs.update(ds["time"].attrs)
        out.attrs.update({"model": self.name, "checkpoint": str(self.path or ""),
                          "forecast_steps": steps, "T_in": self.T_in,
                          "source": "relaxflow surrogate forecast"})
        return out


def _check_increasing(ds: xr.Dataset) -> None:
    """Refuse a history whose ``time``, ``y`` or ``x`` coordinate does not strictly
    increase, as the dataset validator refuses such a file: the network reads the grid
    in array order, so a flipped axis would be a mirrored flow."""
    for c in ("time", "y", "x"):
        if c in ds.coords and ds[c].ndim == 1 and ds[c].size > 1:
            try:
                vals = np.asarray(ds[c].values, dtype=np.float64)
            except (TypeError, ValueError):
                raise ForecastError(f"history coordinate {c!r} is not numeric") from None
            if not np.all(np.diff(vals) > 0):
                raise ForecastError(f"history coordinate {c!r} is not strictly increasing "
                                    f"(as the dataset schema needs); sort it first, e.g. "
                                    f"history.sortby({c!r})")


def _warn_non_finite(pred: torch.Tensor, stacklevel: int) -> None:
    """Warn (:class:`NonFiniteForecastWarning`) when forecast ``pred`` ``(B, S, C, H, W)``
    holds NaN or Inf."""
    bad = ~torch.isfinite(pred)
    if bad.any():
        sims = bad.flatten(2).any(dim=2)  # (B, S)
        first = int(sims.any(dim=0).nonzero()[0]) + 1
        warnings.warn(f"the forecast holds NaN or Inf in {int(sims.any(dim=1).sum())} of "
                      f"{pred.shape[0]} simulation(s), from step {first}: the rollout "
                      "diverged (is the history far outside the training data's range?)",
                      NonFiniteForecastWarning, stacklevel=stacklevel + 1)


def _check_count(name: str, v: Any) -> None:
    if not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_)) or v < 1:
        raise ForecastError(f"{name} must be a positive integer, got {v!r}")


def load(path: str | os.PathLike, device: str | torch.device | None = "cpu", *,
         key: bytes | str | None = None) -> Surrogate:
    """Load a checkpoint written by training as a :class:`Surrogate` on ``device``
    (``"auto"`` or None, ``"cpu"``, ``"cuda"``, ``"cuda:N"``: :mod:`surrogate.devices`;
    another name raises :class:`~surrogate.devices.DeviceError`, a ``ValueError``).
    ``key``: refuse the file unless it carries an HMAC signature made with this key
    (``relaxflow-train`` signs with the key in ``$RELAXFLOW_CHECKPOINT_KEY``)."""
    dev = resolve_device(device)
    ckpt = read_checkpoint(path, key=key)
    try:
        model = model_from_checkpoint(ckpt, dev)
    except CheckpointError as e:
        raise CheckpointError(f"{Path(path)}: {e}") from None
    return Surrogate(model, ckpt["normalization"], ckpt["metadata"], str(Path(path))).to(dev)
