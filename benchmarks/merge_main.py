"""The current main study's 3-seed table, from runs made in three invocations (their
caches were not shared): seed 0 of rotation/translation/symmetric
(``benchmarks/results/main_k6_nonneg_seed0``), seeds 1-2 of them
(``benchmarks/results/main_k6_nonneg``) and all 3 seeds of ``boundary`` on its late-twin
data (``benchmarks/results/boundary_late_twins``)::

    python benchmarks/merge_main.py > benchmarks/results/main_k6_nonneg/table.md

Cells: mean over seeds of each run's RMSE over persistence's on the same windows,
velocity / all fields, test-future then test-domain; the largest single-run ratio is
listed below. ``benchmarks/results_page.py`` turns the same runs into docs/results.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy.merge import ratios, table_md  # noqa: E402


def main() -> None:
    """Print the table (markdown) to stdout."""
    sys.stdout.write(table_md(ratios()))


if __name__ == "__main__":
    main()
