"""Accuracy benchmark: the paper's claim, measured (issue 6 "Results table", issue 7
"Benchmark"). The command-line entry point; the code and its documentation (``--help``)
are in ``benchmarks/accuracy/`` (plan, run, tables, report, cli)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "benchmarks", ROOT):  # run as a script from anywhere
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from accuracy.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
