"""Helpers for the evaluate tests: a tiny dataset in the relaxflow schema (written with
xarray, no PhiFlow) and tiny checkpoints carrying the metadata keys train/loop.py writes."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

N_SIMS, N_TIME, N = 6, 24, 16
T_IN = 3
HELDOUT = [1, 4]


def make_dataset(n_sims: int = N_SIMS, n_time: int = N_TIME, n: int = N, seed: int = 0,
                 dt: float = 0.5) -> xr.Dataset:
    """Smooth, drifting fields: a few Fourier modes per simulation whose phases move in
    time, plus a density blob; cell-centred coords with spacing 1."""
    rng = np.random.default_rng(seed)
    x = np.arange(n) + 0.5
    X, Y = np.meshgrid(x, x)  # [y, x]
    t = np.arange(n_time) * dt
    u = np.zeros((n_sims, n_time, n, n), np.float32)
    v = np.zeros_like(u)
    d = np.zeros_like(u)
    for s in range(n_sims):
        amp = 1 + s / n_sims  # each simulation its own amplitude
        for _ in range(3):
            kx, ky = rng.integers(1, 4, size=2)
            a, w, ph = rng.normal(), rng.uniform(0.2, 0.6), rng.uniform(0, 2 * np.pi)
            arg = 2 * np.pi * (kx * X + ky * Y) / n + ph + w * t[:, None, None]
            u[s] += amp * a * np.sin(arg)
            v[s] += amp * a * np.cos(arg + 0.3)
        cy = 4 + 0.3 * t[:, None, None] + s
        d[s] = np.exp(-((X - n / 2) ** 2 + (Y - cy) ** 2) / 8)
    held = np.zeros(n_sims, bool)
    held[[h for h in HELDOUT if h < n_sims]] = True
    ds = xr.Dataset(
        {"u": (("sim", "time", "y", "x"), u), "v": (("sim", "time", "y", "x"), v),
         "density": (("sim", "time", "y", "x"), d)},
        coords={"sim": np.arange(n_sims), "time": t, "y": x, "x": x,
                "heldout": ("sim", held), "wall": ("sim", np.arange(n_sims) % 4)},
        attrs={"scenario": "custom", "dt": dt})
    return ds


def split_spec(n_sims: int = N_SIMS, n_time: int = N_TIME, T_in: int = T_IN,
               test_steps: int = 6) -> dict:
    """Hand-written in the format of train.splits.SplitSpec.to_dict (metadata['splits'])."""
    train = [s for s in range(n_sims) if s not in HELDOUT]

    def rng(sims, a, b, h, stride=1):
        return {"sims": sims, "start": a, "stop": b, "stride": stride, "horizon": h,
                "num_windows": len(sims) * len(range(a, b, stride))}

    return {
        "train": rng(train, 0, 8, 2), "valid": rng(train, 8, 10, 2),
        "test_future": rng(train, 10, n_time - T_in - test_steps + 1, test_steps),
        "test_domain": rng(HELDOUT, 0, 8, test_steps),
        "semantics": "window = (sim, start): inputs frames [start, start+T_in), targets "
                     "the next `horizon` frames; sims index the concatenated files",
        "T_in": T_in, "n_time": n_time, "n_sims": n_sims, "preset": "custom",
        "heldout_source": "dataset coordinate 'heldout'", "config": {},
    }


def make_checkpoint(path, name: str, ds: xr.Dataset, seed: int = 0, relax: float = 0.0,
                    **config):
    """A tiny random-weight model saved with train's metadata keys; ``relax`` > 0 moves
    the relaxation weights of relaxed layers away from equivariance by that much."""
    import surrogate
    from surrogate.checkpoint import save
    from surrogate.normalization import Normalization
    from surrogate.symmetry import FieldLayout

    torch.manual_seed(seed)
    layout = FieldLayout()
    cfg = dict(T_in=T_IN, hidden=2, depth=2, norm_groups=1)
    cfg.update(config)
    model = surrogate.build_model(name, **cfg)
    if relax:
        with torch.no_grad():
            for m in model.modules():
                w = getattr(m, "relaxed_weights", None)
                if isinstance(w, torch.nn.Parameter):
                    w.add_(relax * torch.randn_like(w))
    arr = np.stack([ds[c].values for c in layout.channels], axis=2)
    norm = Normalization.fit(arr, layout, channel_dim=2)
    n_sims, n_time = ds.sizes["sim"], ds.sizes["time"]
    meta = {
        "kind": "relaxflow.train", "model": name, "model_config_requested": config,
        "T_in": T_IN, "K": 2, "valid_steps": 2, "layout": layout.to_dict(),
        "channels": list(layout.channels), "splits": split_spec(n_sims, n_time),
        "data": {"files": [str(path.parent / "data.nc")], "sims_per_file": [n_sims],
                 "n_sims": n_sims, "n_time": n_time, "channels": list(layout.channels),
                 "scenario": ds.attrs.get("scenario"), "dt": ds.attrs.get("dt"),
                 "grid": {"ny": ds.sizes["y"], "nx": ds.sizes["x"]}, "sim_coords": {}},
        "train_config": {}, "world_size": 1, "epoch": 1, "valid_rmse": 1.0,
        "best_valid_rmse": 1.0, "best_epoch": 1,
    }
    return save(model, path, normalization=norm, metadata=meta)
