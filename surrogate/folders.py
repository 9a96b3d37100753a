"""Replacing a folder by a complete new one, for train (``--overwrite`` stages the new
run in ``.NAME.overwrite``) and evaluate (the report is written in ``.NAME.partial``):
the old folder stays whole until the new one is swapped in by two renames."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

__all__ = ["sibling", "swap_in"]


def sibling(out: Path, tag: str) -> Path:
    """The hidden sibling folder ``.NAME.tag`` of ``out``."""
    return out.parent / f".{out.name}.{tag}"


def swap_in(stage: Path, out: Path, carry: Callable[[str], bool] | None = None) -> None:
    """Replace folder ``out`` (when there is one) by ``stage``: entries of ``out`` whose
    name ``carry`` accepts and that ``stage`` lacks are moved over first, then ``out`` is
    renamed to ``.NAME.replaced``, ``stage`` to ``out``, and the old folder removed."""
    old = sibling(out, "replaced")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        for p in out.iterdir() if carry is not None else ():
            if carry(p.name) and not (stage / p.name).exists():
                os.rename(p, stage / p.name)
        os.rename(out, old)
    os.rename(stage, out)
    if old.exists():
        shutil.rmtree(old)
