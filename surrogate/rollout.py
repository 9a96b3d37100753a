"""The autoregressive rollout, written once: training's multi-step loss and valid
rollouts (:class:`train.objective.Rollout`) and :meth:`surrogate.Surrogate.rollout` use it."""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["autoregress"]


def autoregress(step: Callable[..., torch.Tensor], x: torch.Tensor, steps: int,
                aux: torch.Tensor | None = None, pushforward: bool = False) -> torch.Tensor:
    """``x[t+1] = step(x[t-T_in+1 .. t] [, aux])`` applied ``steps`` times.

    ``x``: ``(B, T_in, C, H, W)`` history; ``aux``: static ``(B, C_aux, H, W)`` fields
    given at every step; ``pushforward``: feed predictions back detached (the gradient
    flows through one step only). Returns ``(B, steps, C, H, W)``."""
    preds = []
    hist = x
    for k in range(steps):
        p = step(hist) if aux is None else step(hist, aux)
        preds.append(p)
        if k < steps - 1:
            fb = (p.detach() if pushforward else p).to(hist.dtype)
            hist = torch.cat([hist[:, 1:], fb.unsqueeze(1)], dim=1)
    return torch.stack(preds, dim=1)
