"""Helpers for tests/train (a uniquely named module, imported by conftest.py and the
tests): a tiny dataset in the relaxflow schema with learnable dynamics: a density blob carried
by a uniform wind that differs per simulation and turns slowly over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr

from train import TrainConfig

N = 16


def make_dataset(path: Path, n_sims: int = 5, n_time: int = 30, n: int = N, *,
                 heldout: list[int] | None = (4,), seed: int = 0,
                 drop: str | None = None, nan_at: tuple[int, int] | None = None,
                 cause: bool = False) -> Path:
    """``cause``: also write the static cause fields over (sim, y, x) (the wind's
    initial direction as ``buoyancy_x/y``, the blob's start as ``inflow_mask``, no
    obstacle, open walls nowhere)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    u = np.zeros((n_sims, n_time, n, n), np.float32)
    v = np.zeros_like(u)
    d = np.zeros_like(u)
    bx = np.zeros((n_sims, n, n), np.float32)
    by, inflow = np.zeros_like(bx), np.zeros_like(bx)
    for s in range(n_sims):
        angle0 = 2 * np.pi * s / n_sims
        speed = 0.6 + 0.2 * rng.random()
        cx, cy = n / 2 + rng.uniform(-2, 2), n / 2 + rng.uniform(-2, 2)
        bx[s], by[s] = 0.05 * np.cos(angle0), 0.05 * np.sin(angle0)
        inflow[s] = ((xx - cx) ** 2 + (yy - cy) ** 2 < 4).astype(np.float32)
        for t in range(n_time):
            a = angle0 + 0.05 * t
            ux, uy = speed * np.cos(a), speed * np.sin(a)
            u[s, t], v[s, t] = ux, uy
            dx = (xx - cx + n / 2) % n - n / 2
            dy = (yy - cy + n / 2) % n - n / 2
            d[s, t] = np.exp(-(dx ** 2 + dy ** 2) / 6.0)
            cx, cy = cx + ux, cy + uy
    coords = {"sim": np.arange(n_sims), "time": np.arange(n_time, dtype=float),
              "y": np.arange(n) + 0.5, "x": np.arange(n) + 0.5,
              "buoyancy": ("sim", np.linspace(0.1, 0.5, n_sims))}
    if heldout is not None:
        coords["heldout"] = ("sim", np.isin(np.arange(n_sims), list(heldout)))
    ds = xr.Dataset({"u": (("sim", "time", "y", "x"), u), "v": (("sim", "time", "y", "x"), v),
                     "density": (("sim", "time", "y", "x"), d)}, coords=coords,
                    attrs={"scenario": "tiny-wind", "dt": 1.0})
    if cause:
        sxy = ("sim", "y", "x")
        ds = ds.assign(buoyancy_x=(sxy, bx), buoyancy_y=(sxy, by), inflow_mask=(sxy, inflow),
                       obstacle_mask=(sxy, np.zeros_like(bx)),
                       open_mask=(sxy, np.zeros_like(bx)))
    if drop:
        ds = ds.drop_vars(drop)
    if nan_at is not None:
        ds["density"][nan_at[0], nan_at[1], 3, 3] = np.nan
    ds.to_netcdf(path)
    return path


def tiny_config(data, out, model="unet", **kw) -> TrainConfig:
    base = dict(data=[str(p) for p in (data if isinstance(data, (list, tuple)) else [data])],
                out=str(out), model=model,
                model_config={"hidden": 4, "depth": 2, "norm_groups": 1},
                T_in=2, K=2, batch_size=8, epochs=3, lr=3e-3, patience=None,
                progress=False, seed=0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def ddp_worker(rank: int, world: int, port: int, cfg: TrainConfig) -> None:
    """Body of one process of a CPU/gloo DDP run (what torchrun would set up)."""
    import os
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from train import fit
    fit(cfg)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recompute_valid_rmse(ckpt: dict, batch_size: int = 5) -> float:
    """The valid RMSE of a checkpoint read by ``read_checkpoint``, recomputed from what
    it stores alone (weights, normalisation, split spec, data files, aux channels)."""
    from surrogate.checkpoint import model_from_checkpoint
    from train import distributed as D
    from train.objective import evaluate
    from train.data import open_data
    from train.splits import SplitRange
    from train.windows import WindowDataset

    meta = ckpt["metadata"]
    net = model_from_checkpoint(ckpt)
    data = open_data(meta["data"]["files"], meta["channels"],
                     aux_channels=meta.get("aux_channels") or ())
    valid = SplitRange.from_dict(meta["splits"]["valid"])
    loader = torch.utils.data.DataLoader(
        WindowDataset.from_split(data, valid, meta["T_in"]), batch_size=batch_size)
    val = evaluate(net, loader, ckpt["normalization"], torch.device("cpu"), K=meta["K"],
                   steps=meta["valid_steps"], amp="none", info=D.DistInfo())
    return val["valid_rmse"]
