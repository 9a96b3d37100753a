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

from accuracy.cli import main, parse  # noqa: E402,F401
from accuracy.plan import (  # noqa: E402,F401  (the names this script used to define)
    ABLATION_SCENARIOS, ABLATION_VARIANTS, COST, DEFAULT_STUDIES, INPUT_SCENARIOS,
    INPUT_VARIANTS, MODELS, RECIPE, SCALES, SCENARIOS, SPLITS, STRICT_OF, STUDIES,
    SWEEP_MODELS, DataJob, RunTask, breaking_support, compute_estimate, data_jobs,
    plan_runs, train_samples_per_epoch, width)
from accuracy.run import generate_data, persistence, rollout_steps, run_task  # noqa: E402,F401
from accuracy.tables import (  # noqa: E402,F401
    ablation_table, collect, inputs_table, main_tables, relaxation_deviation,
    relaxation_table, sweep_table, verdicts)
from accuracy.report import sweep_plot  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
