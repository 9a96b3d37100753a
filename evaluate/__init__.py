"""relaxflow evaluation: rollout metrics, equivariance analysis, pictures and reports.

>>> import evaluate
>>> evaluate.run(["runs/rg/best.pt"], "data/rotation.nc", splits=["test-domain"],
...              steps=20, out="results/rg")          # -> Path("results/rg")

Command line: ``python -m evaluate --checkpoint runs/rg/best.pt --data data/rotation.nc
--split test-domain --steps 20 --out results/rg``.
"""

from . import metrics
from .discovery import discover_symmetry, irrep_energy
from .equivariance import (data_equivariance_error, equivariance_error,
                           model_equivariance_error, relaxation_summary)
from .job import run
from .rollout import EvaluationError, build_windows, evaluate_split, open_data

__all__ = ["run", "metrics", "EvaluationError", "equivariance_error",
           "model_equivariance_error", "data_equivariance_error", "relaxation_summary",
           "discover_symmetry", "irrep_energy",
           "build_windows", "evaluate_split", "open_data"]
