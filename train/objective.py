"""The training objective: the K-step autoregressive rollout, its weighted loss, the
training noise, one optimiser step and the validation rollout.

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
import math
from typing import Any

import torch
from torch import nn

from surrogate.normalization import Normalization
from surrogate.rollout import autoregress
from surrogate.symmetry import FieldLayout

from . import distributed as D
from .config import ConfigError
from .normalize import normalize_batch

__all__ = ["Rollout", "field_weights", "multistep_loss", "add_input_noise", "model_penalty",
           "autocast", "train_step", "evaluate", "to_device"]


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


def model_penalty(model: nn.Module, device: torch.device) -> torch.Tensor:
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
    penalty = model_penalty(model, x.device)
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
        x, y, aux = to_device(batch, device)
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


def to_device(batch, device: torch.device):
    """``(x, y, aux)`` on ``device`` from a ``(x, y)`` or ``(x, y, aux)`` batch."""
    x, y, *aux = (t.to(device, non_blocking=True) for t in batch)
    return x, y, (aux[0] if aux else None)
