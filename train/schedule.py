"""The learning-rate schedule and the K curriculum of a run."""

from __future__ import annotations

import math

import torch

from .config import TrainConfig

__all__ = ["scheduler", "curriculum_K"]


def scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
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


def curriculum_K(epoch: int, cfg: TrainConfig) -> int:
    """Unrolled loss steps in ``epoch`` (0-based): ``K``, or with ``curriculum`` from 1
    growing linearly to ``K`` at half of the epochs."""
    if not cfg.curriculum:
        return cfg.K
    half = max(1, cfg.epochs // 2)
    return max(1, min(cfg.K, 1 + (epoch * cfg.K) // half))
