"""The command line: parse the arguments, then plan, run and report."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

from . import __doc__ as _DOC  # the package docstring is the --help text
from .plan import (MODELS, SCALES, SCENARIOS, STUDIES, TABLE1_ROWS, build_plan, log_estimate,
                   log_plan, resolve_settings)
from .report import write_reports
from .run import execute


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (the package docstring is the --help text)."""
    p = argparse.ArgumentParser(description=_DOC.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=_DOC.split("\n\n", 1)[1])
    p.add_argument("--scale", choices=list(SCALES), default="cpu")
    p.add_argument("--studies", nargs="+", choices=STUDIES, default=None,
                   help="default: main sweep inputs (smoke: main inputs); add ablation "
                        "to run it too")
    p.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=None,
                   help="scenarios of the main study (default: all four)")
    p.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    p.add_argument("--rows", nargs="+", choices=[r[0] for r in TABLE1_ROWS], default=None,
                   metavar="LABEL", help="rows of the table1 study to run (default: all; "
                   "labels: " + ", ".join(repr(r[0]) for r in TABLE1_ROWS) + ")")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (0..N-1)")
    p.add_argument("--seed-list", type=int, nargs="+", default=None, metavar="S",
                   help="these seeds instead of 0..N-1 (e.g. 1 2 to add seeds to a "
                        "study whose seed 0 ran elsewhere)")
    p.add_argument("--jobs", type=int, default=None, help="parallel training processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default per scale)")
    p.add_argument("--params", type=int, default=None, help="override the parameter target")
    p.add_argument("--epochs", type=int, default=None, help="override the epochs")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--work", default=None,
                   help="datasets and runs (default benchmarks/work/<scale>)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = p.parse_args(argv)
    if args.seed_list and args.seeds is not None:
        p.error("give --seeds or --seed-list, not both")
    if args.seed_list and min(args.seed_list) < 0:
        p.error(f"--seed-list: seeds must be >= 0, got {min(args.seed_list)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Plan, run and report the benchmark; 0 on success, 1 if a run failed, 2 on misuse."""
    t_start = time.perf_counter()
    args = parse(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    st = resolve_settings(args)
    import torch
    torch.set_num_threads(st.threads)
    if st.device.startswith("cuda") and not torch.cuda.is_available() and not st.dry_run:
        print(f"--device {st.device}: CUDA is not available on this machine", file=sys.stderr)
        return 2
    plan = build_plan(st)
    log_plan(st, plan)
    if st.dry_run:
        log_estimate(st, plan)
        return 0
    st.out_dir.mkdir(parents=True, exist_ok=True)
    outcome = execute(plan, st.jobs, st.device, st.threads)
    cmd = "python benchmarks/bench_accuracy.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    return write_reports(st, plan, outcome, cmd, t_start)
