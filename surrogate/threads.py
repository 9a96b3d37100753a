"""The CPU thread count of torch, set for a block and restored after it."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["torch_threads"]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous count
    after it, also when it raises (torch's thread count is process-wide)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
