"""Accuracy benchmark: the paper's claim, measured. The command-line entry point; the
code and its documentation (``--help``) are in ``benchmarks/accuracy/`` (plan, run,
tables, report, cli)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # accuracy adds the root itself

from accuracy.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
