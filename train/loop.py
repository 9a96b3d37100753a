"""The training loop: multi-step autoregressive loss, AdamW with warm-up + cosine (or
step) schedule, weight EMA, clipping, early stopping on the valid rollout RMSE,
best/last checkpoints, resume, DDP: :func:`fit` and the :class:`Trainer` it runs.

The objective (the K-step loss, noise, one optimiser step, validation) is in
:mod:`train.objective`, the run folder in :mod:`train.run_folder`, the schedule in
:mod:`train.schedule`, the resume state and its rules in :mod:`train.resume`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
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
from surrogate.checkpoint import CheckpointError, read_checkpoint, save
from surrogate.diskfull import reporting_full_disk
from surrogate.normalization import Normalization
from surrogate.records import TrainingRecord
from surrogate.registry import needs_grid
from surrogate.symmetry import FieldLayout

from . import distributed as D
from .config import ConfigError, TrainConfig
from .data import DataError, open_header, read_fields
from .ema import EMA
from .model_setup import (build_model, check_model_fits, json_model_config,
                          resolve_device)
from .objective import (Rollout, evaluate, field_weights, to_device,
                        train_step)
from .resume import (check_resume_state, check_same_run, rng_state,
                     set_rng_state)
from .run_folder import (Run, drop_stage, own_out, prepare_out, reset_out, swap_in_run,
                         trim_metrics)
from .schedule import curriculum_K, scheduler
from .normalize import (fit_aux, fit_delta_scale, fit_lower_bound, fit_normalization,
                        normalize_batch)
from .splits import SplitError, min_frames, resolve_splits
from .windows import WindowDataset

__all__ = ["fit", "Trainer", "TrainingError", "resolve_device", "build_model"]



class TrainingError(RuntimeError):
    """Training had to stop (non-finite loss or gradient)."""


def _log(info: D.DistInfo, cfg: TrainConfig, msg: str) -> None:
    if info.is_main and cfg.progress:
        from tqdm import tqdm
        tqdm.write(msg, file=sys.stderr)


#: why ``compile`` is refused on a CPU (measured on 2 cores, a ~10k-parameter U-Net, 3
#: epochs: eager 0.6 s per epoch; compiled 286 s for the first epoch, which builds four
#: graphs (batch sizes, grad modes), then 1.4-1.7 s per epoch)
COMPILE_ON_CPU = ("--compile is refused on a CPU: torch.compile builds a graph per batch "
                  "size and grad mode, minutes each on a CPU, and the compiled step measured "
                  "2x slower than eager there; use it on CUDA")


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
    if config.compile and device.type == "cpu":
        raise ConfigError(COMPILE_ON_CPU)
    info = D.setup(device.type)
    if info.distributed and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    try:
        with own_out(Path(config.out), info, device):
            return Trainer(config, device, info, key).fit()
    finally:
        D.cleanup(info)


class Trainer:
    """One training run: ``__init__`` sets it up, refusing every bad input before training
    starts; :meth:`fit` runs the epochs. The order of random draws is that of a straight
    run, so a resumed run ends bit-identical to it."""

    def __init__(self, cfg: TrainConfig, device: torch.device, info: D.DistInfo,
                 key: bytes | str | None = None):
        self.cfg, self.device, self.info, self.key = cfg, device, info, key
        self.run = prepare_out(cfg)
        self.layout = FieldLayout.of(cfg.model_config.get("layout"))
        self.K, self.T_in, self.steps = cfg.K, cfg.T_in, cfg.eval_steps
        # data header -> splits -> model with its grid -> field values: a bad model fails
        # before any field value is read, and nothing is read twice
        self._open_header()
        self.model = self._build_model()
        self.data = read_fields(self.data, in_memory=cfg.in_memory,
                                max_memory_gb=cfg.max_memory_gb)
        self.ckpt = read_checkpoint(self.run.last, key=key) if cfg.resume else None
        self.ts = (self.ckpt or {}).get("training_state") or {}  # the resume state
        if self.ckpt is not None:
            check_resume_state(self.ts, self.run.last)
        self.model_config = json_model_config(cfg, self.layout)
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
            options["grid"] = (self.data.ny, self.data.nx)  # position-dependent weights
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        torch.manual_seed(cfg.seed)
        try:
            return build_model(cfg.model, T_in=self.T_in, **options)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"model {cfg.model!r}: {e}") from None

    def _open_header(self) -> None:
        """The data's header (sizes, grid, coordinates, static breaking causes) and the
        splits, refused with a one-line error when they cannot train."""
        cfg = self.cfg
        try:
            self.breaking = canonical_breaking_inputs(cfg.model_config.get("breaking_inputs"))
        except ValueError as e:
            raise ConfigError(f"model {cfg.model!r}: {e}") from None
        self.aux_layout = data_layout(self.breaking)
        need = min_frames(cfg.split, T_in=self.T_in, K=self.K, valid_steps=self.steps)
        self.data = open_header(cfg.data, self.layout.channels,
                                min_time=need if need is not None else self.T_in + self.K,
                                min_time_for=(f"T_in={self.T_in}, K={self.K}, valid_steps="
                                              f"{self.steps} and the split settings leave "
                                              "train and valid windows"),
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
        check_same_run(TrainingRecord.from_dict(self.ckpt["metadata"]), self.cfg,
                       self.model_config, self.data.record(), self.spec,
                       int(self.ts["epoch"]), self.run.last)
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
        check_model_fits(model, cfg, self.data, self.device)
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
        # each loader draws its workers' base seed from a generator of its own, never
        # from the global RNG: persistent workers draw it once per process, which would
        # shift a resumed run's global stream against the straight run's
        self.train_loader = DataLoader(self.train_ds, batch_size=cfg.batch_size,
                                       sampler=self.sampler, num_workers=cfg.num_workers,
                                       pin_memory=pin, persistent_workers=cfg.num_workers > 0,
                                       generator=torch.Generator().manual_seed(cfg.seed))
        part = Subset(self.valid_ds, list(range(info.rank, len(self.valid_ds),
                                                info.world_size)))
        self.valid_loader = DataLoader(part, batch_size=cfg.batch_size, shuffle=False,
                                       num_workers=cfg.num_workers, pin_memory=pin,
                                       generator=torch.Generator().manual_seed(cfg.seed))
        self.n_batches = min(len(self.train_loader), cfg.max_steps_per_epoch or math.inf)

    def _resume_state(self) -> None:
        """Schedule, epoch counters and (resuming) optimiser, schedule and RNG states."""
        self.sched = scheduler(self.opt, self.cfg, self.n_batches)
        self.start_epoch, self.best_rmse, self.best_epoch, self.bad_epochs = 0, math.inf, 0, 0
        if self.ckpt is None:
            return
        ts = self.ts
        try:
            self.opt.load_state_dict(ts["optimizer"])
            self.sched.load_state_dict(ts["scheduler"])
            set_rng_state(ts["rng"])      # all or nothing
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as e:
            raise CheckpointError(f"{self.run.last}: its resume state does not fit this "
                                  f"run ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        self.start_epoch = int(ts["epoch"])
        self.best_rmse = float(ts["best_valid_rmse"])
        self.best_epoch = int(ts["best_epoch"])
        self.bad_epochs = int(ts["bad_epochs"])

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
            drop_stage(self.run, self.info)
            raise

    def _fit(self) -> Path:
        cfg, info, run = self.cfg, self.info, self.run
        reset_out(run, cfg, info)
        if info.is_main:
            trim_metrics(run.metrics, self.start_epoch)
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
                self.run = swap_in_run(self.run) if info.is_main else Run(self.run.final)
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
        k_epoch = curriculum_K(epoch, cfg)
        for i, batch in zip(range(self.n_batches), self.train_loader):
            x, y, aux = to_device(batch, dev)
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
                 "scheduler": self.sched.state_dict(), "rng": rng_state(),
                 "best_valid_rmse": self.best_rmse, "best_epoch": self.best_epoch,
                 "bad_epochs": self.bad_epochs}
        if self.ema is not None:
            state["raw_state_dict"] = {k: v.detach().cpu().clone()
                                       for k, v in self.model.state_dict().items()}
            state["ema_updates"] = self.ema.updates
        return state


