"""What a resumed run restores and what it may change: the RNG states (in a form
``torch.load(weights_only=True)`` reads), the check of a ``last.pt``'s resume state, and
the rules that refuse other data or a changed recipe before any epoch runs."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from surrogate.checkpoint import CheckpointError
from surrogate.records import DataRecord, SplitSpec, TrainingRecord

from .config import ConfigError, TrainConfig

#: settings a resumed run may change: how it runs, not what it learns (``epochs`` only
#: with the step schedule, which may be extended; the cosine schedule spans the epochs)
MAY_CHANGE = ("epochs", "patience", "device", "amp", "compile", "num_workers", "in_memory",
              "max_memory_gb", "progress")
#: not compared here: where it runs (data files are compared by content, see
#: :func:`other_data`), the flags of the run itself, and what the model check covers
_NOT_COMPARED = ("data", "out", "resume", "overwrite", "model", "model_config", "T_in",
                 "split")
_KEYS = ("epoch", "optimizer", "scheduler", "rng", "best_valid_rmse", "best_epoch",
         "bad_epochs")


def rng_state() -> dict[str, Any]:
    """The torch (and CUDA), python and numpy RNG states."""
    v, keys, gauss = random.getstate()
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [v, list(keys), gauss],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached": float(np_state[4])},
    }


def set_rng_state(s: dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s states; on a bad state nothing is changed."""
    before = rng_state()
    try:
        torch.set_rng_state(s["torch"])
        if s.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(s["cuda"])
        v, keys, gauss = s["python"]
        random.setstate((v, tuple(keys), gauss))
        n = s["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                             n["has_gauss"], n["cached"]))
    except BaseException:
        set_rng_state(before)
        raise


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_resume_state(ts: dict, last: Path) -> None:
    """Refuse a ``last.pt`` whose resume state cannot be used (absent, as in a copy of
    ``best.pt``, or of the wrong kinds) with one :class:`CheckpointError` line."""
    if not ts:
        raise CheckpointError(f"{last}: holds no resume state (is it a copy of best.pt?); "
                              "a run resumes from the last.pt it wrote")
    missing = [k for k in _KEYS if k not in ts]
    problem = f"lacks {missing}" if missing else ""
    if not problem:
        opt, rng = ts["optimizer"], ts["rng"]
        torch_state = rng.get("torch") if isinstance(rng, dict) else None
        python = rng.get("python") if isinstance(rng, dict) else None
        checks = [
            (all(_is_count(ts[k]) for k in ("epoch", "best_epoch", "bad_epochs")),
             f"epoch, best_epoch and bad_epochs must be counts, got {ts['epoch']!r}, "
             f"{ts['best_epoch']!r}, {ts['bad_epochs']!r}"),
            (isinstance(ts["best_valid_rmse"], (int, float))
             and not isinstance(ts["best_valid_rmse"], bool),
             f"best_valid_rmse must be a number, got {ts['best_valid_rmse']!r}"),
            (isinstance(opt, dict) and isinstance(opt.get("param_groups"), list)
             and len(opt["param_groups"]) > 0 and isinstance(opt.get("state"), dict),
             "the optimiser state has no parameter groups"),
            (isinstance(ts["scheduler"], dict), "the scheduler state is not a table"),
            (isinstance(torch_state, torch.Tensor) and torch_state.dtype == torch.uint8
             and torch_state.numel() == torch.get_rng_state().numel(),
             "the torch RNG state is not one torch generator's"),
            (isinstance(python, (list, tuple)) and len(python) == 3
             and isinstance(python[1], (list, tuple)) and len(python[1]) == 625,
             "the python RNG state is not one Mersenne Twister's"),
        ]
        problem = next((why for ok, why in checks if not ok), "")
    if problem:
        raise CheckpointError(f"{last}: its resume state is unusable ({problem})")


def other_data(old: DataRecord, new: DataRecord) -> str:
    """What tells ``new`` from the run's data ``old`` ("" when it is the same data, under
    any path). Facts an older checkpoint did not record are not compared."""
    for name in ("scenario", "dt", "n_time", "sims_per_file", "channels", "aux_channels"):
        a, b = getattr(old, name), getattr(new, name)
        if json.dumps(a) != json.dumps(b) and (a or a == 0):
            return f"{name} {b!r} here, {a!r} in the run"
    if old.grid and json.dumps(old.grid, sort_keys=True) != json.dumps(new.grid,
                                                                       sort_keys=True):
        return f"grid {new.grid} here, {old.grid} in the run"
    for c, t in old.dtypes.items():
        if new.dtypes.get(c) != t:
            return f"dtype of {c!r} {new.dtypes.get(c)} here, {t} in the run"
    for c, (s, q) in old.moments.items():
        s2, q2 = new.moments.get(c, (math.nan, math.nan))
        if not (math.isclose(s, s2, rel_tol=1e-9, abs_tol=1e-9 * math.sqrt(q) + 1e-30)
                and math.isclose(q, q2, rel_tol=1e-9)):
            return f"the values of {c!r} differ (sum {s2:.6g} here, {s:.6g} in the run)"
    return ""


def _plain(v: Any) -> Any:
    """``v`` as JSON reads it back (tuples as lists), to compare with stored records."""
    return json.loads(json.dumps(v))


def check_same_run(old: TrainingRecord, cfg: TrainConfig, model_config: dict,
                   data: DataRecord, spec: SplitSpec, epochs_done: int, last: Path) -> None:
    """Refuse to resume ``last`` (whose record is ``old``) with another model, other data,
    other splits or a changed recipe (:func:`check_resume_changes`)."""
    if old.model != cfg.model or old.T_in != cfg.T_in or \
            old.model_config_requested != _plain(model_config):
        raise ConfigError(f"cannot resume {last}: it holds model {old.model!r} "
                          f"with T_in={old.T_in} and config "
                          f"{old.model_config_requested}, not the one configured")
    other = other_data(old.data, data)
    if other:
        raise ConfigError(f"cannot resume {last}: --data is other data than the run's "
                          f"({other}); resume on the run's own data, or start a new run")
    if old.splits is None or _plain(old.splits.to_dict()) != _plain(spec.to_dict()):
        raise ConfigError(f"cannot resume {last}: the data or split settings differ "
                          "from the run being resumed")
    check_resume_changes(old.train_config, cfg, epochs_done, last)


def check_resume_changes(old: dict, cfg: TrainConfig, epochs_done: int, last: Path) -> None:
    """Refuse a resume that changes what cannot change (see :data:`MAY_CHANGE`)."""
    new, old = _plain(cfg.to_dict()), _plain(old or {})
    how = ", ".join(k for k in MAY_CHANGE if k not in ("epochs", "patience"))
    may = (f"may change only epochs (step schedule), patience and how it runs ({how}); "
           "start a new run (another --out, or --overwrite) to change the rest")
    for k, v in new.items():
        if k in _NOT_COMPARED or k in MAY_CHANGE or k not in old or old[k] == v:
            continue
        raise ConfigError(f"cannot resume {last}: {k} {v!r} differs from the run's "
                          f"{old[k]!r}; a resumed run {may}")
    if cfg.epochs < epochs_done:
        raise ConfigError(f"cannot resume {last}: it has trained {epochs_done} epochs, more "
                          f"than epochs {cfg.epochs}")
    if cfg.schedule == "cosine" and "epochs" in old and old["epochs"] != cfg.epochs:
        raise ConfigError(f"cannot resume {last}: epochs {cfg.epochs} differs from the "
                          f"run's {old['epochs']}, and the cosine schedule spans the "
                          "run's epochs; keep them, or train with schedule 'step' to "
                          "extend a run")
