"""The markdown pieces of the evaluation report: numbers, rows and tables."""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["fmt", "row", "table"]


def fmt(x: float | None, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits (scientific below 1e-3 and from 1e4);
    ``n/a`` for None."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a" if x is None else str(x)
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.2e}"
    return f"{x:.{digits}g}"


def row(cells: Sequence[str]) -> str:
    """One markdown table row."""
    return "| " + " | ".join(cells) + " |"


def table(cols: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table: header, separator and ``rows``."""
    return [row(cols), "|---" * len(cols) + "|"] + [row(r) for r in rows]
