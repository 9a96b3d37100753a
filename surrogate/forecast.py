"""The forecast API: a trained checkpoint as a plain Python object.

>>> model = surrogate.load("runs/rg/best.pt", device="cpu")
>>> pred = model.forecast(history, steps=50)     # history: xarray.Dataset (sim, time, y, x)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from .checkpoint import model_from_checkpoint, read_checkpoint
from .normalization import Normalization
from .symmetry import FieldLayout

__all__ = ["Surrogate", "load", "ForecastError"]


class ForecastError(ValueError):
    """History that does not fit the model (grid, frames, variables, layout)."""


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ForecastError("device 'cuda' was asked for but torch sees no CUDA GPU")
    return device


class Surrogate(nn.Module):
    """A trained surrogate: the network, its normalisation and its metadata.

    ``forward`` is the raw network ``(B, T_in, C, H, W) -> (B, C, H, W)`` in normalised
    units; :meth:`rollout` and :meth:`forecast` work in physical units.
    """

    def __init__(self, model: nn.Module, normalization: Normalization | None = None,
                 metadata: dict | None = None, path: str | None = None) -> None:
        super().__init__()
        self.model = model
        config = model.config
        self.name: str = config["name"]
        self.T_in: int = int(config.get("T_in", 10))
        layout = config.get("layout")
        self.layout = (FieldLayout.from_dict(layout) if isinstance(layout, dict)
                       else layout if isinstance(layout, FieldLayout) else FieldLayout())
        self.normalization = normalization or Normalization.identity(self.layout)
        self.metadata = dict(metadata or {})
        self.path = path
        self._exported: nn.Module | None = None

    # -- properties from the training metadata ---------------------------------------
    @property
    def grid(self) -> tuple[int, int] | None:
        """``(H, W)`` the model was trained on, when the checkpoint records it."""
        g = self.metadata.get("grid") or self.metadata.get("data", {}).get("grid")
        if isinstance(g, dict):
            g = (g.get("ny"), g.get("nx"))
        return (int(g[0]), int(g[1])) if g and None not in tuple(g) else None

    @property
    def dt(self) -> float | None:
        """Physical time between two frames of the training data, when recorded."""
        dt = self.metadata.get("dt", self.metadata.get("data", {}).get("dt"))
        return float(dt) if dt is not None else None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def exported(self) -> nn.Module:
        """The inference module with expanded kernels (built once, cached)."""
        if self._exported is None:
            export = getattr(self.model, "export", None)
            self._exported = (export() if export is not None else self.model).eval()
        return self._exported

    # -- tensors -------------------------------------------------------------------
    def _check_tensor(self, history: torch.Tensor) -> None:
        if history.ndim != 5:
            raise ForecastError(f"history must be (B, T, C, H, W), got shape "
                                f"{tuple(history.shape)}")
        b, t, c, h, w = history.shape
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
    def rollout(self, history: torch.Tensor, steps: int, batch_size: int = 64,
                exported: bool = True) -> torch.Tensor:
        """Autoregressive forecast in physical units: ``(B, T, C, H, W)`` history ->
        ``(B, steps, C, H, W)`` predicted frames (the history is not included)."""
        if steps < 1:
            raise ForecastError(f"steps must be >= 1, got {steps}")
        self._check_tensor(history)
        net = self.exported() if exported else self.model.eval()
        dev = self.device
        outs = []
        for start in range(0, history.shape[0], batch_size):
            x = history[start:start + batch_size, -self.T_in:].to(dev, torch.float32)
            x = self.normalization.normalize(x)
            frames = []
            for _ in range(steps):
                y = net(x)
                frames.append(y)
                x = torch.cat([x[:, 1:], y[:, None]], dim=1)
            pred = self.normalization.denormalize(torch.stack(frames, dim=1))
            outs.append(pred.cpu())
        return torch.cat(outs)

    # -- xarray --------------------------------------------------------------------
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
            arr = np.stack([ds[v].transpose("sim", "time", "y", "x").values
                            for v in self.layout.channels], axis=2)
            return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)), ds
        t = torch.as_tensor(np.asarray(history) if not torch.is_tensor(history) else history)
        if t.ndim == 4:
            t = t[None]
        return t.float(), None

    @torch.no_grad()
    def forecast(self, history: Any, steps: int = 20, batch_size: int = 64) -> xr.Dataset:
        """Continue ``history`` by ``steps`` frames.

        ``history``: an ``xarray.Dataset`` with the model's variables on dims
        ``(sim, time, y, x)`` or ``(time, y, x)``, a DataArray with a ``channel`` dim, or
        a tensor/array ``(B, T, C, H, W)`` / ``(T, C, H, W)``. The last ``T_in`` frames
        are used. Returns a Dataset ``(sim, time, y, x)`` of the predicted frames only,
        with the history's coords, a continued ``time`` and the model in ``attrs``."""
        x, ds = self._history_to_tensor(history)
        pred = self.rollout(x, steps, batch_size).numpy()
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
        nsim = pred.shape[0]
        if ds is not None:
            for name, c in ds.coords.items():
                if name == "time" or "time" in c.dims:
                    continue
                coords[name] = c
        coords.setdefault("sim", ("sim", np.arange(nsim)))
        h, w = pred.shape[-2:]
        coords.setdefault("y", ("y", np.arange(h) + 0.5))
        coords.setdefault("x", ("x", np.arange(w) + 0.5))
        data_vars = {}
        for i, name in enumerate(self.layout.channels):
            attrs = dict(ds[name].attrs) if ds is not None else {}
            data_vars[name] = (("sim", "time", "y", "x"), pred[:, :, i], attrs)
        out = xr.Dataset(data_vars, coords=coords)
        out["time"].attrs.update(ds["time"].attrs if ds is not None else {})
        out.attrs.update({"model": self.name, "checkpoint": str(self.path or ""),
                          "forecast_steps": steps, "T_in": self.T_in,
                          "source": "relaxflow surrogate forecast"})
        return out


def load(path: str | os.PathLike, device: str | torch.device | None = "cpu") -> Surrogate:
    """Load a checkpoint written by training as a :class:`Surrogate` on ``device``
    (``"cpu"``, ``"cuda"``, ``"auto"``)."""
    dev = _resolve_device(device)
    ckpt = read_checkpoint(path)
    model = model_from_checkpoint(ckpt, dev)
    return Surrogate(model, ckpt["normalization"], ckpt["metadata"], str(Path(path))).to(dev)
