"""The learned invariant probe: can a *strict* network read a run's breaking cause from
one frame?

The statistics probe (:mod:`evaluate.observability`) reads the cause with six invariant
numbers; a strict model sees far more (where the smoke sits relative to the flow, the
shape of the plume). This probe fits the cause with the kind of function a strict model
computes: a small D4-equivariant group-conv U-Net (``gconv_unet``, hidden 4, depth 2)
whose output density, a scalar field, is averaged over the grid, then scaled and shifted:

    y_hat(x) = a * mean_xy f(x)_density + c,    f(g x) = g f(x)  =>  y_hat(g x) = y_hat(x)

so the prediction is exactly invariant to every quarter turn and mirror of the grid.
Fitted on frames of the training runs (from the first probed frame on), scored by R^2
on each probed frame of the held-out runs. High R^2: a strict model can tell the
runs' breaking apart from one frame, and relaxation has little to add; R^2 near or below
0 while the orientation predicts the cause: the breaking is hidden from a strict model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["invariant_r2"]

#: channels the probe reads: the velocity vector and the density scalar (a scalar field's
#: grid mean is invariant)
CHANNELS = ("u", "v", "density")


def _normalised(ds, train: np.ndarray) -> np.ndarray:
    """``(sim, time, 3, y, x)`` float32: velocity over one RMS magnitude of the training
    runs (rotations keep it a vector), density standardised on the training runs."""
    x = np.stack([np.asarray(ds[k].values, np.float32) for k in CHANNELS], axis=2)
    vel = np.sqrt(float((x[train][:, :, :2] ** 2).mean()))
    x[:, :, :2] /= max(vel, 1e-12)
    d = x[train][:, :, 2]
    x[:, :, 2] = (x[:, :, 2] - float(d.mean())) / max(float(d.std()), 1e-12)
    return x


def invariant_r2(ds, y: np.ndarray, train: np.ndarray, frames: Sequence[int],
                 steps: int = 300, batch_size: int = 32, lr: float = 3e-3,
                 seed: int = 0) -> dict[int, float]:
    """``frame -> R^2`` on the runs not in ``train`` of cause ``y`` ``(sim,)`` predicted
    from that one frame by the invariant network above, trained ``steps`` Adam steps on
    random (training run, frame >= min(frames)) pairs. Deterministic for a ``seed``: it
    runs on one CPU thread, because the thread count sets the order of torch's sums, and
    after 300 steps that order moves the R^2 by a few hundredths; the global torch RNG
    and thread count are left as they were."""
    from surrogate.threads import torch_threads

    frames = [int(f) for f in frames if 0 <= int(f) < ds.sizes["time"]]
    if not frames or not train.any() or train.all():
        return {}
    x = _normalised(ds, train)
    ym, ysd = float(y[train].mean()), float(y[train].std()) or 1.0
    z = ((y - ym) / ysd).astype(np.float32)
    runs, fit_frames = np.flatnonzero(train), np.arange(min(frames), ds.sizes["time"])
    rng = np.random.default_rng(seed)
    with torch_threads(1):
        return _fit(x, z, runs, fit_frames, frames, train, rng, steps, batch_size, lr, seed)


def _fit(x, z, runs, fit_frames, frames, train, rng, steps, batch_size, lr, seed
         ) -> dict[int, float]:
    """The probe's fit and its held-out R^2 per frame (see :func:`invariant_r2`)."""
    import torch
    from surrogate import build_model

    from .observability import r2

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = build_model("gconv_unet", group="D4", T_in=1, hidden=4, depth=2)
        head = torch.nn.Linear(1, 1)

        def predict(frames_b: np.ndarray) -> torch.Tensor:
            out = net(torch.from_numpy(frames_b)[:, None])        # (B, C, H, W)
            return head(out[:, 2].mean(dim=(1, 2))[:, None])[:, 0]

        opt = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=lr)
        for _ in range(steps):
            s, t = rng.choice(runs, batch_size), rng.choice(fit_frames, batch_size)
            loss = (predict(x[s, t]) - torch.from_numpy(z[s])).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        test = ~train
        with torch.no_grad():
            return {f: r2(z[test].astype(float), predict(x[test, f]).numpy().astype(float))
                    for f in frames}
