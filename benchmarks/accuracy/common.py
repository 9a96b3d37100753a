"""Helpers shared by the accuracy benchmark's modules: paths, cache hashing, JSON, log."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
# the packages (surrogate, train, ...) and the sibling scripts (bench_models) importable
# however this package was reached; bench_accuracy.py puts both there already
for _p in (BENCHMARKS, ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


def now() -> str:
    """The current local time, ISO format to the second."""
    return dt.datetime.now().isoformat(timespec="seconds")


def stable_hash(obj: Any) -> str:
    """16-hex-digit SHA-1 of ``obj`` as sorted JSON: the cache key of runs (never change)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (a temporary file, then a rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def log(msg: str) -> None:
    """Print ``msg`` with a [HH:MM:SS] time stamp, flushed."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
