"""A model's size from its config, before it is built: a config that asks for more
memory than the machine has (a crafted checkpoint with ``hidden = 10**6`` would ask for
terabytes) is refused with one line instead of an allocation failure or the OOM killer."""

from __future__ import annotations

import os
from typing import Callable

from torch import nn

#: widths up to this are built as they are; a wider model is measured at this width first
PROBE_HIDDEN = 32


def available_memory() -> int | None:
    """Bytes the kernel says a new allocation can get (``MemAvailable``; free pages where
    it is absent); None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("MemAvailable:"))
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def tensor_bytes(model: nn.Module) -> int:
    """Bytes of ``model``'s parameters and buffers."""
    return sum(t.numel() * t.element_size()
               for t in (*model.parameters(), *model.buffers()))


def check_width(build: Callable[[int], nn.Module], hidden: int, what: str) -> None:
    """Refuse a model wider than :data:`PROBE_HIDDEN` whose weights would not fit in the
    memory available. ``build(h)`` builds the model at width ``h``. Every layer's weights
    grow at most as ``hidden ** 2`` (a + b h + c h^2 <= P(h0) (h / h0)^2 for h >= h0), so
    ``P(PROBE_HIDDEN) (hidden / PROBE_HIDDEN)^2`` bounds them from above."""
    if hidden <= PROBE_HIDDEN:
        return
    bound = tensor_bytes(build(PROBE_HIDDEN)) * (hidden / PROBE_HIDDEN) ** 2
    avail = available_memory()
    if avail is not None and bound > avail:
        raise ValueError(f"{what} with hidden={hidden} needs up to {_size(bound)} for its "
                         f"weights alone, more than the {_size(avail)} of memory available")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PB"  # pragma: no cover
