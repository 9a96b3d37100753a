"""The training loop: multi-step autoregressive loss, AdamW with warm-up + cosine (or
step) schedule, weight EMA, clipping, early stopping on the valid rollout RMSE,
best/last checkpoints, resume, DDP.

Loss of one window (``x``: ``T_in`` frames, ``y``: ``K`` frames, both normalised)::

    hist = x + noise                           (training noise, in units of one step's change)
    for k in 1..K:  p_k = model(hist[, aux]);  hist = hist[1:] + [p_k]      (teacher-free)
    loss = sum_k mean_c w_c mean((p_k - y_k)_c^2) + model.equivariance_penalty()

With delta targets (the default) the residual model predicts ``x[t] + g * out`` with
``g = delta_scale / scale`` per channel (:attr:`Normalization.delta_gain`), and the loss
weights are ``w_c = lambda_c / g_c^2`` (``lambda_c``: ``loss_weights``, 1 by default): the
first step's loss is the (weighted) MSE of the normalised one-step difference. Noise is
i.i.d. Gaussian with std ``noise * g_c`` per channel (one value for both components of a
vector, so its distribution is rotation invariant).

With ``pushforward`` the prediction fed back is detached, so each step's loss is
back-propagated through that one step only while still seeing the distribution of the
model's own rollouts (Brandstetter et al. 2022). The validation metric is the RMSE in
physical units of a ``valid_steps``-step rollout over target frames only (the ``T_in``
given frames are never counted).

A model with the ``cause`` breaking input gets each window's static cause fields
(``aux``, normalised by ``Normalization.aux``) at every step; ``frame``/``coords`` are
made by the model itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from surrogate.breaking import canonical_breaking_inputs, data_layout
from surrogate.checkpoint import read_checkpoint, save
from surrogate.diskfull import reporting_full_disk
from surrogate.folders import hold, sibling, swap_in, temporaries
from surrogate.normalization import Normalization
from surrogate.records import TrainingRecord
from surrogate.registry import needs_grid
from surrogate.rollout import autoregress
from surrogate.symmetry import FieldLayout

from . import distributed as D
from .config import ConfigError, TrainConfig
from .data import DataError, FieldData, open_data
from .ema import EMA
from .normalize import (fit_aux, fit_delta_scale, fit_lower_bound, fit_normalization,
                        normalize_batch)
from .splits import SplitError, resolve_splits
from .windows import WindowDataset

__all__ = ["fit", "Trainer", "TrainingError", "Rollout", "field_weights", "multistep_loss",
           "train_step", "add_input_noise", "resolve_device", "build_model", "autocast"]

METRICS_FILE = "metrics.jsonl"


class TrainingError(RuntimeError):
    """Training had to stop (non-finite loss or gradient)."""


def build_model(name: str, **config: Any) -> nn.Module:
    """``surrogate.build_model`` (looked up at call time)."""
    from surrogate import build_model as _build
    return _build(name, **config)


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} requested but CUDA is not available")
    return torch.device(spec)


class Rollout(nn.Module):
    """``(B, T_in, C, H, W) [, aux (B, C_aux, H, W)] -> (B, steps, C, H, W)``: the
    one-step model applied autoregressively (the static ``aux`` fields, when given, at
    every step). Wrapped whole in DDP so that one forward holds all ``K`` steps."""

    def __init__(self, step: nn.Module):
        super().__init__()
        self.step = step

    def forward(self, x: torch.Tensor, steps: int, pushforward: bool = False,
                aux: torch.Tensor | None = None) -> torch.Tensor:
        return autoregress(self.step, x, steps, aux, pushforward)


def field_weights(weights: dict[str, float], layout: FieldLayout) -> torch.Tensor:
    """Per-channel loss weights ``(C,)`` from ``{channel name: weight}`` (unnamed: 1).
    Both components of a vector field must get one weight (a weight per component would
    make the loss, and so the trained model, depend on the frame's orientation)."""
    unknown = sorted(set(weights) - set(layout.channels))
    if unknown:
        raise ConfigError(f"loss_weights names unknown channel(s) {unknown}; the data's "
                          f"channels are {list(layout.channels)}")
    w = [float(weights.get(c, 1.0)) for c in layout.channels]
    for a, b in layout.vectors:
        wa, wb = weights.get(a), weights.get(b)
        if wa != wb:  # also when only one component is named
            raise ConfigError(f"loss_weights: the vector field ({a}, {b}) needs one weight "
                              f"for both components, got {a}={wa}, {b}={wb}")
    return torch.tensor(w, dtype=torch.float32)


def multistep_loss(preds: torch.Tensor, y: torch.Tensor,
                   weight: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over steps of the per-step mean squared error (float32) of ``(B, K, C, H, W)``
    tensors; ``weight (C,)`` weighs the channels (None: all 1)."""
    se = (preds.float() - y.float()) ** 2
    if weight is not None:
        se = se * weight.float().view(1, 1, -1, 1, 1)
    return se.mean(dim=(0, 2, 3, 4)).sum()


def add_input_noise(x: torch.Tensor, std: torch.Tensor,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """``x + n`` for a history ``x (B, T, C, H, W)``, ``n`` i.i.d. Gaussian with std
    ``std[c]`` per channel. A vector field's components share one std (the caller's
    :attr:`Normalization.delta_gain` guarantees it), so the law of ``n`` is invariant
    under rotations and mirrors: ``g . (x + n)`` is distributed as ``g . x + n``."""
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + noise * std.to(x).view(1, 1, -1, 1, 1)


def _penalty(model: nn.Module, device: torch.device) -> torch.Tensor:
    """The model's ``equivariance_penalty()`` (0 without one) as a float32 scalar."""
    fn = getattr(model, "equivariance_penalty", None)
    return torch.as_tensor(fn() if fn is not None else 0.0, device=device).float().reshape(())


def autocast(device: torch.device, amp: str):
    """bf16 autocast on ``device`` for ``amp='bf16'``, else no context."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(module: nn.Module, model: nn.Module, opt: torch.optim.Optimizer,
               x: torch.Tensor, y: torch.Tensor, *, pushforward: bool = False,
               grad_clip: float | None = None, amp: str = "none",
               info: D.DistInfo | None = None, aux: torch.Tensor | None = None,
               noise: torch.Tensor | None = None, weight: torch.Tensor | None = None):
    """One optimisation step on a normalised batch. ``module``: the (possibly DDP-wrapped)
    :class:`Rollout`; ``model``: the bare model (penalty, clipping); ``aux``: the
    normalised static aux fields or None; ``noise (C,)``: std of the Gaussian noise added
    to the history ``x``; ``weight (C,)``: loss weights (:func:`multistep_loss`).
    Returns detached ``(data_loss, penalty, grad_norm)`` (loss and penalty averaged over
    processes); the weights are left unchanged when the loss (on any process) or the
    gradient is not finite."""
    info = info or D.DistInfo()
    if noise is not None:
        x = add_input_noise(x, noise)
    with autocast(x.device, amp):
        preds = module(x, y.shape[1], pushforward, aux)
    data_loss = multistep_loss(preds, y, weight)
    penalty = _penalty(model, x.device)
    opt.zero_grad(set_to_none=True)
    report = torch.stack([data_loss.detach(), penalty.detach()]).double()
    D.all_reduce_sum(report, info)  # every process must agree before backward
    report /= info.world_size
    if not torch.isfinite(report).all():
        return report[0], report[1], torch.tensor(float("nan"))
    (data_loss + penalty).backward()
    params = [p for p in model.parameters() if p.grad is not None]  # no clip: max norm inf
    norm = torch.nn.utils.clip_grad_norm_(params, math.inf if grad_clip is None else grad_clip)
    if torch.isfinite(norm):  # DDP synchronised the gradients: one norm on every process
        opt.step()
    return report[0], report[1], norm.detach()


@torch.no_grad()
def evaluate(step: nn.Module, loader, norm: Normalization, device: torch.device, *,
             K: int, steps: int, amp: str, info: D.DistInfo,
             weight: torch.Tensor | None = None) -> dict[str, Any]:
    """Valid loss (normalised, ``K`` steps, as in training) and rollout RMSE (physical
    units, ``steps`` steps, targets only), summed over all processes."""
    C = len(norm.layout.channels)
    sums = torch.zeros(3 + C, dtype=torch.float64, device=device)  # loss, n, count, se/ch
    rollout = Rollout(step)
    for batch in loader:
        x, y, aux = _to_device(batch, device)
        xn, yn = normalize_batch(norm, x, y)
        with autocast(device, amp):
            pred_n = rollout(xn, max(K, steps), False, norm.normalize_aux(aux)).float()
        se_n = (pred_n[:, :K] - yn[:, :K]) ** 2
        if weight is not None:
            se_n = se_n * weight.view(1, 1, -1, 1, 1)
        se_n = se_n.mean(dim=(2, 3, 4)).sum(dim=1)
        # float64: squares of large physical values overflow float32 (1e20**2 > 3e38)
        pred = norm.denormalize(pred_n[:, :steps]).double()
        se = ((pred - y[:, :steps].double()) ** 2).sum(dim=(0, 1, 3, 4))
        sums[0] += se_n.sum().double()
        sums[1] += x.shape[0]
        sums[2] += y[:, :steps, 0].numel()
        sums[3:] += se
    D.all_reduce_sum(sums, info)
    loss = (sums[0] / sums[1]).item()
    per_ch = (sums[3:] / sums[2]).sqrt().tolist()
    rmse = math.sqrt((sums[3:].sum() / (sums[2] * C)).item())
    return {"valid_loss": loss, "valid_rmse": rmse,
            "valid_rmse_per_channel": dict(zip(norm.layout.channels, per_ch))}


def _to_device(batch, device: torch.device):
    """``(x, y, aux)`` on ``device`` from a ``(x, y)`` or ``(x, y, aux)`` batch."""
    x, y, *aux = (t.to(device, non_blocking=True) for t in batch)
    return x, y, (aux[0] if aux else None)


# --- RNG state (weights_only-loadable) ---------------------------------------------
def _rng_state() -> dict[str, Any]:
    v, keys, gauss = random.getstate()
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [v, list(keys), gauss],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached": float(np_state[4])},
    }


def _set_rng_state(s: dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    if s.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    v, keys, gauss = s["python"]
    random.setstate((v, tuple(keys), gauss))
    n = s["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))


# --- the run --------------------------------------------------------------------------
@dataclasses.dataclass
class _Run:
    """Where a run writes. With ``overwrite`` of an existing run the files go to a
    sibling staging folder first; ``final`` is the folder it replaces once the new run
    has its first checkpoint (:func:`_swap_in`)."""
    out: Path
    final: Path | None = None

    best = property(lambda self: self.out / "best.pt")
    last = property(lambda self: self.out / "last.pt")
    metrics = property(lambda self: self.out / METRICS_FILE)


_RUN_FILES = ("best.pt", "last.pt", METRICS_FILE)  # what a run owns in its folder


def _swap_in(run: _Run) -> _Run:
    """Move the new run from its staging folder to ``run.final``, carrying over the
    files of the old folder that are not a run's (a user's notes, a report)."""
    swap_in(run.out, run.final, carry=lambda name: name not in _RUN_FILES and not (
        name.startswith(".") and name.endswith(".tmp")))
    return _Run(run.final)


def _data_grid(paths) -> tuple[int, int]:
    """``(ny, nx)`` of the first data file (read lazily, nothing loaded)."""
    from simulate.dataset import DatasetError, open_one

    if not paths:
        raise ConfigError("no data given: pass --data FILE [FILE ...]")
    try:
        with open_one(paths[0], variables=(), dim_order=False) as ds:
            return int(ds.sizes["y"]), int(ds.sizes["x"])
    except DatasetError as e:
        raise DataError(str(e)) from None


def _json_model_config(cfg: TrainConfig, layout: FieldLayout) -> dict[str, Any]:
    mc = {**cfg.model_config, "layout": layout.to_dict()}
    if "breaking_inputs" in mc:
        mc["breaking_inputs"] = list(canonical_breaking_inputs(mc["breaking_inputs"]))
    return mc


def _log(info: D.DistInfo, cfg: TrainConfig, msg: str) -> None:
    if info.is_main and cfg.progress:
        from tqdm import tqdm
        tqdm.write(msg, file=sys.stderr)


def fit(config: TrainConfig, *, key: bytes | str | None = None) -> Path:
    """Train ``config.model`` on ``config.data``; returns the path of the best checkpoint
    (``<out>/best.pt``). Under ``torchrun`` every process calls this; rank 0 writes.
    ``overwrite`` of an existing run keeps the old run until the new one has written
    its first checkpoint. ``key``: sign every checkpoint (HMAC, see
    :func:`surrogate.checkpoint.save`); a resumed ``last.pt`` must carry that signature.

    One process (rank 0 under ``torchrun``) owns ``out`` for the whole run
    (:func:`surrogate.folders.hold`); another run into the same folder is refused.

    Raises :class:`ConfigError` / :class:`DataError` (bad input, before training starts)
    and :class:`TrainingError` (a non-finite loss; the last good checkpoint is kept)."""
    if not isinstance(config, TrainConfig):
        raise TypeError("fit() takes a TrainConfig (see train.load_config)")
    device = resolve_device(config.device)
    info = D.setup(device.type)
    if info.distributed and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    try:
        with _own_out(Path(config.out), info, device):
            return Trainer(config, device, info, key).fit()
    finally:
        D.cleanup(info)


@contextlib.contextmanager
def _own_out(out: Path, info: D.DistInfo, device: torch.device):
    """Hold ``out`` on rank 0 for the ``with`` block (clearing what killed runs into it
    left, :func:`_clear_leftovers`); every rank raises the one-line :class:`ConfigError`
    when another process holds it."""
    with contextlib.ExitStack() as stack:
        busy: ConfigError | None = None
        if info.is_main:
            try:
                stack.enter_context(hold(out, ConfigError))
                _clear_leftovers(out)  # before the other ranks go on (the all-reduce waits)
            except ConfigError as e:
                busy = e
        if info.distributed:  # the other ranks learn whether rank 0 got the folder
            flag = torch.tensor([float(busy is not None)], device=device)
            if D.all_reduce_sum(flag, info).item() > 0 and busy is None:
                busy = ConfigError(f"{out} is in use: another process holds it")
        if busy is not None:
            raise busy
        yield


def _clear_leftovers(out: Path) -> None:
    """Remove what killed runs into ``out`` left (``out`` is held, so no live process
    writes them): the temporary files of checkpoint and metrics writes in the run folder,
    and the staging folder of an ``overwrite`` run that never replaced the old run (not
    the one a swap interrupted between its renames still has to move in, see
    :func:`_prepare_out`)."""
    for p in [*temporaries(out, "best.pt"), *temporaries(out, "last.pt"),
              out / "metrics.tmp"]:
        if p.is_file():
            p.unlink()
    stage, old = sibling(out, "overwrite"), sibling(out, "replaced")
    unfinished_swap = not out.exists() and old.is_dir() and (stage / "last.pt").is_file()
    if stage.is_dir() and not unfinished_swap:
        shutil.rmtree(stage)


def _prepare_out(cfg: TrainConfig) -> _Run:
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    stage, old = sibling(out, "overwrite"), sibling(out, "replaced")
    # finish a swap that a kill interrupted between its two renames
    if not out.exists() and old.is_dir() and (stage / "last.pt").is_file():
        os.rename(stage, out)
    if out.exists() and old.is_dir():
        shutil.rmtree(old)
    run = _Run(out)
    if cfg.resume:
        if not run.last.is_file():
            raise ConfigError(f"cannot resume: {run.last} does not exist")
    elif run.last.exists() or run.best.exists():
        if not cfg.overwrite:
            raise ConfigError(f"{out} already holds a training run; pass --resume to "
                              "continue it or --overwrite to start over")
        # the old run stays until the new one has written its first checkpoint
        return _Run(stage, final=out)
    return run


def _reset_out(run: _Run, cfg: TrainConfig, info: D.DistInfo) -> None:
    """Create the folder the run writes to, once every input has been validated (a
    staging folder left by an earlier, killed ``overwrite`` is cleared first: the run
    folder is held, so no live process owns it)."""
    D.barrier(info)
    if info.is_main:
        if run.final is not None and run.out.exists():
            shutil.rmtree(run.out)
        elif not cfg.resume:
            run.metrics.unlink(missing_ok=True)  # a folder without checkpoints
        with reporting_full_disk(run.out):
            run.out.mkdir(parents=True, exist_ok=True)
    D.barrier(info)


def _drop_stage(run: _Run, info: D.DistInfo) -> None:
    """Remove the staging folder of a new ``overwrite`` run that died before its swap
    (this process made it in :func:`_reset_out`; the old run stays as it was)."""
    if info.is_main and run.final is not None:
        shutil.rmtree(run.out, ignore_errors=True)


def _check_model_fits(model: nn.Module, cfg: TrainConfig, data: FieldData,
                      device: torch.device) -> None:
    """One tiny forward before training, so that a grid the model cannot take fails with
    a clear message rather than inside the first epoch."""
    shape = (1, len(data.channels), data.ny, data.nx)
    inputs = [torch.zeros(1, cfg.T_in, *shape[1:], device=device)]
    if data.aux is not None:
        inputs.append(torch.zeros(1, len(data.aux_channels), data.ny, data.nx, device=device))
    was_training = model.training
    model.eval()  # no running statistics may change
    try:
        with torch.no_grad():
            y = model(*inputs)
    except Exception as e:
        config = getattr(model, "config", None)
        depth = config.get("depth") if isinstance(config, dict) else None
        hint = (f" (grid sides must be divisible by 2**(depth-1) = {2 ** (depth - 1)})"
                if depth else "")
        raise DataError(f"model {cfg.model!r} cannot run on the {data.ny}x{data.nx} grid "
                        f"with {shape[1]} channels{hint}: {e}") from None
    finally:
        model.train(was_training)
    if tuple(y.shape) != shape:
        raise DataError(f"model {cfg.model!r} maps (1, T_in, C, H, W) to {tuple(y.shape)}, "
                        f"expected {shape}")


class Trainer:
    """One training run: ``__init__`` sets it up, refusing every bad input before training
    starts; :meth:`fit` runs the epochs. The order of random draws is that of a straight
    run, so a resumed run ends bit-identical to it."""

    def __init__(self, cfg: TrainConfig, device: torch.device, info: D.DistInfo,
                 key: bytes | str | None = None):
        self.cfg, self.device, self.info, self.key = cfg, device, info, key
        self.run = _prepare_out(cfg)
        self.layout = FieldLayout.of(cfg.model_config.get("layout"))
        self.K, self.T_in, self.steps = cfg.K, cfg.T_in, cfg.eval_steps
        self.model = self._build_model()   # a bad name or option fails before any data
        self._open_data()
        self.ckpt = read_checkpoint(self.run.last, key=key) if cfg.resume else None
        self.ts = (self.ckpt or {}).get("training_state") or {}  # the resume state
        self.model_config = _json_model_config(cfg, self.layout)
        self.norm = self._normalization()
        self._targets()
        self._init_weights()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                     weight_decay=cfg.weight_decay)
        self._loaders()
        self._resume_state()
        self._wrap()
        self.record = TrainingRecord(
            model=cfg.model, T_in=self.T_in, K=self.K, valid_steps=self.steps,
            layout=self.layout, breaking_inputs=self.breaking,
            aux_channels=tuple(self.aux_layout.channels), splits=self.spec,
            data=self.data.record(), model_config_requested=self.model_config,
            train_config=cfg.to_dict() | {"model_config": self.model_config},
            world_size=info.world_size,
            normalization_fitted_on="train split (frames covered by the train windows)")

    # ---- setup ------------------------------------------------------------------------
    def _build_model(self) -> nn.Module:
        cfg = self.cfg
        options = {**cfg.model_config, "layout": self.layout}
        if needs_grid(cfg.model, options) and options.get("grid") is None:
            options["grid"] = _data_grid(cfg.data)  # position-dependent weights
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        torch.manual_seed(cfg.seed)
        try:
            return build_model(cfg.model, T_in=self.T_in, **options)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"model {cfg.model!r}: {e}") from None

    def _open_data(self) -> None:
        """Data and splits, refused with a one-line error when they cannot train."""
        cfg = self.cfg
        self.breaking = tuple(self.model.config.get("breaking_inputs", ()))
        self.aux_layout = data_layout(self.breaking)
        self.data = open_data(cfg.data, self.layout.channels, min_time=self.T_in + self.K,
                              in_memory=cfg.in_memory, max_memory_gb=cfg.max_memory_gb,
                              aux_channels=self.aux_layout.channels,
                              aux_needed_by=f"the breaking input 'cause' (breaking_inputs "
                                            f"{list(self.breaking)})")
        try:
            self.spec = resolve_splits(cfg.split, n_time=self.data.n_time,
                                       n_sims=self.data.n_sims, T_in=self.T_in, K=self.K,
                                       valid_steps=self.steps,
                                       heldout_coord=self.data.heldout)
        except SplitError as e:
            raise DataError(f"{cfg.data[0]}: {e}") from None
        if not self.spec.test_domain.sims and cfg.split.heldout != "none" \
                and self.info.is_main:
            warnings.warn(f"{cfg.data[0]}: no simulation is held out "
                          f"({self.spec.heldout_source}), so test-domain is empty and "
                          "nothing measures unseen simulations; list split.heldout "
                          "indices, or set heldout = 'none' to silence this", stacklevel=3)

    def _normalization(self) -> Normalization:
        """The resumed run's normalisation (after checking it is the same run), or one
        fitted on the train split."""
        if self.ckpt is None:
            norm = fit_normalization(self.data, self.spec.train, self.T_in, self.layout)
            if self.cfg.nonnegative:  # applied by every forecast, not in training
                norm = dataclasses.replace(norm, lower_bound=fit_lower_bound(
                    self.data, self.spec.train, self.T_in, self.layout))
            if self.aux_layout.num_channels:
                norm = dataclasses.replace(norm, aux=fit_aux(self.data, self.spec.train,
                                                             self.aux_layout))
            return norm
        old, last = TrainingRecord.from_dict(self.ckpt["metadata"]), self.run.last
        if old.model != self.cfg.model or old.T_in != self.T_in or \
                old.model_config_requested != json.loads(json.dumps(self.model_config)):
            raise ConfigError(f"cannot resume {last}: it holds model {old.model!r} "
                              f"with T_in={old.T_in} and config "
                              f"{old.model_config_requested}, not the one configured")
        if old.splits is None or json.loads(json.dumps(old.splits.to_dict())) != \
                json.loads(json.dumps(self.spec.to_dict())):
            raise ConfigError(f"cannot resume {last}: the data or split settings differ "
                              "from the run being resumed")
        return self.ckpt["normalization"]

    def _targets(self) -> None:
        """Delta scale, loss weights and training-noise scale, per channel."""
        cfg, norm = self.cfg, self.norm
        self.delta = cfg.targets == "delta"
        if (self.delta or cfg.persistence_init) and not getattr(self.model, "residual", False):
            raise ConfigError(f"targets='delta' and persistence_init need a residual model; "
                              f"{cfg.model!r} is built with residual=False (set "
                              "targets='state' and persistence_init=false)")
        delta_scale = (norm.delta_scale if norm.delta_scale is not None
                       else fit_delta_scale(self.data, self.spec.train, self.T_in, self.layout))
        if self.ckpt is None and self.delta:
            self.norm = norm = dataclasses.replace(norm, delta_scale=delta_scale)
        # one unit of the one-step change in normalised state units, per channel: the
        # scale of the training noise (and of the residual and loss weights with delta)
        gain = torch.tensor([d / s for d, s in zip(delta_scale, norm.scale)],
                            dtype=torch.float32, device=self.device)
        w = field_weights(cfg.loss_weights, self.layout).to(self.device)
        self.loss_weight = w / gain ** 2 if self.delta else (w if cfg.loss_weights else None)
        self.noise_std = cfg.noise * gain if cfg.noise > 0 else None

    def _init_weights(self) -> None:
        """Resumed weights, or the delta scale and persistence head; the EMA copy."""
        cfg, model, ckpt = self.cfg, self.model, self.ckpt
        if ckpt is not None:
            model.load_state_dict(self.ts.get("raw_state_dict", ckpt["state_dict"]))
        else:
            if self.delta:
                model.set_delta_scale(self.norm.delta_gain)
            if cfg.persistence_init:
                model.init_persistence()
        model.to(self.device)
        _check_model_fits(model, cfg, self.data, self.device)
        self.ema = EMA(model, cfg.ema) if cfg.ema is not None else None
        if self.ema is not None and ckpt is not None:
            self.ema.module.load_state_dict(ckpt["state_dict"])
            self.ema.updates = int(self.ts.get("ema_updates", 0))

    def _loaders(self) -> None:
        cfg, info = self.cfg, self.info
        pin = self.device.type == "cuda"
        self.train_ds = WindowDataset.from_split(self.data, self.spec.train, self.T_in)
        self.valid_ds = WindowDataset.from_split(self.data, self.spec.valid, self.T_in)
        self.sampler = DistributedSampler(self.train_ds, num_replicas=info.world_size,
                                          rank=info.rank, shuffle=True, seed=cfg.seed)
        self.train_loader = DataLoader(self.train_ds, batch_size=cfg.batch_size,
                                       sampler=self.sampler, num_workers=cfg.num_workers,
                                       pin_memory=pin, persistent_workers=cfg.num_workers > 0)
        part = Subset(self.valid_ds, list(range(info.rank, len(self.valid_ds),
                                                info.world_size)))
        self.valid_loader = DataLoader(part, batch_size=cfg.batch_size, shuffle=False,
                                       num_workers=cfg.num_workers, pin_memory=pin)
        self.n_batches = min(len(self.train_loader), cfg.max_steps_per_epoch or math.inf)

    def _resume_state(self) -> None:
        """Schedule, epoch counters and (resuming) optimiser, schedule and RNG states."""
        self.sched = _scheduler(self.opt, self.cfg, self.n_batches)
        self.start_epoch, self.best_rmse, self.best_epoch, self.bad_epochs = 0, math.inf, 0, 0
        if self.ckpt is None:
            return
        ts = self.ts
        self.opt.load_state_dict(ts["optimizer"])
        self.sched.load_state_dict(ts["scheduler"])
        self.start_epoch = int(ts["epoch"])
        self.best_rmse = float(ts["best_valid_rmse"])
        self.best_epoch = int(ts["best_epoch"])
        self.bad_epochs = int(ts["bad_epochs"])
        _set_rng_state(ts["rng"])

    def _wrap(self) -> None:
        """The compiled step, the model that is validated and saved (the EMA copy when
        there is one) and the (DDP-wrapped) multi-step rollout."""
        model, ema = self.model, self.ema
        step_fn = torch.compile(model) if self.cfg.compile else model
        self.eval_model = ema.module if ema is not None else model
        self.eval_fn = ema.module if ema is not None else step_fn
        self.rollout: nn.Module = Rollout(step_fn)
        if self.info.distributed:
            dev = self.device
            self.rollout = nn.parallel.DistributedDataParallel(
                self.rollout, device_ids=[dev.index] if dev.type == "cuda" else None)

    # ---- epochs -----------------------------------------------------------------------
    def fit(self) -> Path:
        """Train from the start (or resumed) epoch to the last; the best checkpoint."""
        try:
            return self._fit()
        except BaseException:
            _drop_stage(self.run, self.info)
            raise

    def _fit(self) -> Path:
        cfg, info, run = self.cfg, self.info, self.run
        _reset_out(run, cfg, info)
        if info.is_main:
            _trim_metrics(run.metrics, self.start_epoch)
            d = self.data
            _log(info, cfg, f"train: {cfg.model} on {d.n_sims} sims x {d.n_time} frames "
                 f"{d.ny}x{d.nx} ({'in memory' if d.in_memory else 'lazy'}); windows "
                 f"train {len(self.train_ds)}, valid {len(self.valid_ds)}; device "
                 f"{self.device}{f', {info.world_size} processes' if info.distributed else ''}")
        if self.start_epoch == 0:  # the untrained model: the baseline every epoch beats
            val = self.validate()
            self._write_metrics({"epoch": 0, "train_loss": None, "penalty": None,
                                 **val, "lr": self.opt.param_groups[0]["lr"],
                                 "epoch_time_s": 0.0, "train_samples_per_s": None,
                                 "best": False})
            if not math.isfinite(val["valid_rmse"]):  # no epoch can fix that: stop now
                raise TrainingError("non-finite valid RMSE of the untrained model (epoch "
                                    "0): its forecast is not finite on these data; "
                                    "training not started")
        for epoch in range(self.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            lr = self.opt.param_groups[0]["lr"]
            loss, penalty, n = self.train_one_epoch(epoch)
            train_time = time.perf_counter() - t0
            val = self.validate()
            improved = self._update_best(val, epoch)
            record = {"epoch": epoch + 1, "train_loss": loss, "penalty": penalty, **val,
                      "lr": lr, "epoch_time_s": time.perf_counter() - t0,
                      "train_samples_per_s": n / max(train_time, 1e-9), "best": improved}
            if info.is_main:
                self.checkpoint(epoch, record, improved)
            if self.run.final is not None:  # the new run has a checkpoint: it replaces the old
                self.run = _swap_in(self.run) if info.is_main else _Run(self.run.final)
            D.barrier(info)
            if self.should_stop():
                _log(info, cfg, f"early stop: no valid improvement for {self.bad_epochs} "
                     f"epochs (best {self.best_rmse:.4g} at epoch {self.best_epoch})")
                break
        self.data.close()
        D.barrier(info)
        if not self.run.best.is_file():  # pragma: no cover - resumed a finished run
            raise TrainingError(f"no best checkpoint in {self.run.out}")
        return self.run.best

    def train_one_epoch(self, epoch: int) -> tuple[float, float, float]:
        """Optimiser steps over (at most ``max_steps_per_epoch``) train batches; the
        mean loss and penalty and the number of samples, summed over processes."""
        from tqdm import tqdm

        cfg, info, model, dev = self.cfg, self.info, self.model, self.device
        self.sampler.set_epoch(epoch)
        model.train()
        bar = tqdm(total=self.n_batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not (info.is_main and cfg.progress), file=sys.stderr)
        acc = torch.zeros(3, dtype=torch.float64, device=dev)  # loss*n, penalty*n, n
        k_epoch = _curriculum_K(epoch, cfg)
        for i, batch in zip(range(self.n_batches), self.train_loader):
            x, y, aux = _to_device(batch, dev)
            x, y = normalize_batch(self.norm, x, y[:, :k_epoch])
            loss, pen, gnorm = train_step(self.rollout, model, self.opt, x, y,
                                          pushforward=cfg.pushforward,
                                          grad_clip=cfg.grad_clip, amp=cfg.amp, info=info,
                                          aux=self.norm.normalize_aux(aux),
                                          noise=self.noise_std, weight=self.loss_weight)
            if not torch.isfinite(gnorm):  # NaN whenever loss or penalty is non-finite
                bar.close()
                self._non_finite(loss, pen, epoch, i)
            if cfg.schedule == "cosine":
                self.sched.step()
            if self.ema is not None:
                self.ema.update(model)
            acc += torch.stack([loss, pen, torch.ones_like(loss)]) * x.shape[0]
            bar.update(1)
            if info.is_main and cfg.progress:
                bar.set_postfix(loss=f"{(acc[0] / acc[2]).item():.4g}")
        bar.close()
        if cfg.schedule == "step":
            self.sched.step()
        D.all_reduce_sum(acc, info)
        return (acc[0] / acc[2]).item(), (acc[1] / acc[2]).item(), acc[2].item()

    def _kept(self, epoch: int) -> str:
        return (f"the last good checkpoint {self.run.last} (epoch {epoch}) is kept"
                if self.run.last.is_file() else "no checkpoint had been written yet")

    def _non_finite(self, loss: torch.Tensor, pen: torch.Tensor, epoch: int, i: int):
        what = "loss" if not (torch.isfinite(loss) and torch.isfinite(pen)) else "gradient"
        raise TrainingError(
            f"non-finite {what} (loss {loss.item():g}, penalty {pen.item():g}) at "
            f"epoch {epoch + 1}, step {i + 1}; training stopped, {self._kept(epoch)}. "
            "Try a lower lr or a grad_clip.")

    def validate(self) -> dict[str, Any]:
        """Valid loss and rollout RMSE (physical units) of the evaluated model (the EMA
        copy when there is one)."""
        self.model.eval()
        return evaluate(self.eval_fn, self.valid_loader, self.norm, self.device, K=self.K,
                        steps=self.steps, amp=self.cfg.amp, info=self.info,
                        weight=self.loss_weight)

    def _update_best(self, val: dict[str, Any], epoch: int) -> bool:
        if not math.isfinite(val["valid_rmse"]):
            raise TrainingError(f"non-finite valid RMSE at epoch {epoch + 1}; training "
                                f"stopped, {self._kept(epoch)}")
        improved = val["valid_rmse"] < self.best_rmse
        if improved:
            self.best_rmse, self.best_epoch, self.bad_epochs = val["valid_rmse"], epoch + 1, 0
        else:
            self.bad_epochs += 1
        return improved

    def should_stop(self) -> bool:
        """Early stopping: ``patience`` epochs without a better valid RMSE."""
        return self.cfg.patience is not None and self.bad_epochs >= self.cfg.patience

    def _write_metrics(self, record: dict[str, Any]) -> None:
        if self.info.is_main:
            with reporting_full_disk(self.run.metrics), open(self.run.metrics, "a") as f:
                f.write(json.dumps(record) + "\n")

    def checkpoint(self, epoch: int, record: dict[str, Any], improved: bool) -> None:
        """The epoch's metrics line, ``best.pt`` (when improved) and ``last.pt``."""
        meta = dataclasses.replace(self.record, progress={
            "epoch": epoch + 1, "valid_rmse": record["valid_rmse"],
            "valid_loss": record["valid_loss"], "best_valid_rmse": self.best_rmse,
            "best_epoch": self.best_epoch}).to_dict()
        # the metrics line first: a kill before last.pt is written leaves a line that
        # --resume trims (it keeps the epochs last.pt holds), never a missing one
        self._write_metrics(record)
        kw = dict(normalization=self.norm, metadata=meta, key=self.key)
        if improved:
            save(self.eval_model, self.run.best, **kw)
        save(self.eval_model, self.run.last, training_state=self._training_state(epoch), **kw)
        _log(self.info, self.cfg, f"epoch {epoch + 1}/{self.cfg.epochs}  loss "
             f"{record['train_loss']:.4g}  valid_rmse {record['valid_rmse']:.4g}  lr "
             f"{record['lr']:.3g}  {record['epoch_time_s']:.1f}s"
             f"{'  *best*' if improved else ''}")

    def _training_state(self, epoch: int) -> dict[str, Any]:
        state = {"epoch": epoch + 1, "optimizer": self.opt.state_dict(),
                 "scheduler": self.sched.state_dict(), "rng": _rng_state(),
                 "best_valid_rmse": self.best_rmse, "best_epoch": self.best_epoch,
                 "bad_epochs": self.bad_epochs}
        if self.ema is not None:
            state["raw_state_dict"] = {k: v.detach().cpu().clone()
                                       for k, v in self.model.state_dict().items()}
            state["ema_updates"] = self.ema.updates
        return state


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """``"step"``: ``lr_decay`` every ``lr_step_epochs`` epochs (stepped per epoch).
    ``"cosine"``: linear warm-up over the first ``warmup`` fraction of all optimiser
    steps, then ``lr (0.01 + 0.99 (1 + cos(pi p)) / 2)`` for progress ``p`` in [0, 1]
    (stepped per optimiser step)."""
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step_epochs,
                                               gamma=cfg.lr_decay)
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(cfg.warmup * total)

    def factor(i: int) -> float:
        if i < warm:
            return (i + 1) / warm
        p = min(1.0, (i - warm) / max(1, total - warm))
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * p))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _curriculum_K(epoch: int, cfg: TrainConfig) -> int:
    """Unrolled loss steps in ``epoch`` (0-based): ``K``, or with ``curriculum`` from 1
    growing linearly to ``K`` at half of the epochs."""
    if not cfg.curriculum:
        return cfg.K
    half = max(1, cfg.epochs // 2)
    return max(1, min(cfg.K, 1 + (epoch * cfg.K) // half))


def _trim_metrics(path: Path, epochs_done: int) -> None:
    """Keep the metrics of epochs ``<= epochs_done`` (a resumed run rewrites the rest)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError, KeyError):
            if json.loads(line)["epoch"] <= epochs_done:
                keep.append(line)
    tmp = path.with_suffix(".tmp")
    try:
        with reporting_full_disk(path):
            tmp.write_text("".join(l + "\n" for l in keep))
            shutil.move(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
