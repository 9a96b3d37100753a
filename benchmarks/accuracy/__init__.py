"""Accuracy benchmark: the paper's claim, measured.

Three studies by default and an ablation on request, every model at (about) the same
parameter count (the ablation varies it on purpose), several seeds, 20-step
autoregressive rollouts scored on test-future (later times of the training simulations)
and test-domain (held-out simulations) with the splits recorded in each checkpoint:

* ``main``   - the five models (``unet``, ``gconv_unet``, ``relaxed_gconv_unet``,
  ``steer_unet``, ``relaxed_steer_unet``) on ``rotation``, ``translation``, ``boundary``
  and the ``symmetric`` control;
* ``sweep``  - plain vs strict vs relaxed (``unet``, ``gconv_unet``,
  ``relaxed_gconv_unet``) on ``breaking_sweep`` datasets, one per breaking level (a plot);
* ``inputs`` - breaking symmetry by inputs on ``rotation`` and ``boundary``:
  strict, relaxed, strict+cause, strict+frame, relaxed+cause, plain+coords (the
  group-conv family; strict = ``gconv_unet``, relaxed = ``relaxed_gconv_unet``);
* ``ablation`` - why the relaxed models are or are not ahead, on ``rotation`` and the
  ``symmetric`` control: strict, relaxed group conv with L = 2 banks (the default) and
  L = 1 at equal parameters, relaxed L = 2 at the strict model's width (more
  parameters), the relaxed steerable net at its default ``relax_scale`` 1, at the
  slower 0.1 (the default before 2026-12-02) and with a stronger equivariance penalty
  (alpha 1e-1 vs 1e-5), at equal parameters and at the strict steerable width, with
  how far the learned relaxation weights moved from equivariance on each dataset.

A persistence forecast (the last given frame repeated) is scored on the same windows as
a floor every model should beat.

Two scales::

    python benchmarks/bench_accuracy.py --scale cpu              # ~45 min on 2 CPU cores
    python benchmarks/bench_accuracy.py --scale cpu --studies main sweep inputs ablation
    python benchmarks/bench_accuracy.py --scale paper --device cuda --jobs 2   # a GPU
    python benchmarks/bench_accuracy.py --scale paper --dry-run  # print the plan only
    python benchmarks/bench_accuracy.py --scale smoke            # 1 seed, rotation, tiny

Options: ``--scenarios``, ``--models``, ``--studies``, ``--seeds N`` (seeds 0..N-1) or
``--seed-list S ...``, ``--rows LABEL ...`` (only these rows of the table1 study),
``--jobs`` (parallel training processes, one torch thread each by default), ``--out``
(results folder), ``--work`` (datasets and runs). Generated datasets and finished runs
are cached under ``--work`` (default ``benchmarks/work/<scale>``): a finished run's
``result.json`` is reused when its settings match, an interrupted run resumes from its
``last.pt``, so re-running the command continues an interrupted benchmark.

Writes ``accuracy_<scale>.md`` (tables, settings, machine, wall time),
``accuracy_<scale>.csv`` (one row per run), ``accuracy_<scale>.json`` (everything) and
``accuracy_sweep_<scale>.png`` to ``--out`` (default ``benchmarks/results``; the smoke
scale writes under its work folder).
"""

# The docstring above is the command line's --help (description and epilog), so keep it
# in step with cli.parse. Modules: plan, run, tables, report, cli (each says what it holds
# in its docstring), sharing the helpers below (paths, cache hashing, JSON, log);
# ``benchmarks/bench_accuracy.py`` is the entry point.

import datetime as dt
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# the packages (surrogate, train, ...) and the sibling scripts (bench_models) importable
# however this package was reached
for _p in (ROOT / "benchmarks", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


def now() -> str:
    """The current local time, ISO format to the second."""
    return dt.datetime.now().isoformat(timespec="seconds")


def stable_hash(obj: Any) -> str:
    """16-hex-digit SHA-1 of ``obj`` as sorted JSON: the cache key of runs (never change)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file, then a rename): a killed
    run leaves the previous file, never half of a new one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=1, default=str))


def log(msg: str) -> None:
    """Print ``msg`` with a [HH:MM:SS] time stamp, flushed."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
