"""A training run's folder: who owns it (one process, :func:`surrogate.folders.hold`),
where a run writes (a staging folder while ``overwrite`` replaces an old run), the swap
that replaces the old run, and the metrics a resumed run keeps."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch

from surrogate.diskfull import reporting_full_disk
from surrogate.folders import hold, sibling, swap_in, temporaries

from . import distributed as D
from .config import ConfigError, TrainConfig

__all__ = ["METRICS_FILE", "RUN_FILES", "Run", "swap_in_run", "own_out", "prepare_out",
           "reset_out", "drop_stage", "trim_metrics", "clear_leftovers"]

METRICS_FILE = "metrics.jsonl"


@dataclasses.dataclass
class Run:
    """Where a run writes. With ``overwrite`` of an existing run the files go to a
    sibling staging folder first; ``final`` is the folder it replaces once the new run
    has its first checkpoint (:func:`swap_in_run`)."""
    out: Path
    final: Path | None = None

    best = property(lambda self: self.out / "best.pt")
    last = property(lambda self: self.out / "last.pt")
    metrics = property(lambda self: self.out / METRICS_FILE)


RUN_FILES = ("best.pt", "last.pt", METRICS_FILE)  # what a run owns in its folder


def swap_in_run(run: Run) -> Run:
    """Move the new run from its staging folder to ``run.final``, carrying over the
    files of the old folder that are not a run's (a user's notes, a report)."""
    swap_in(run.out, run.final, carry=lambda name: name not in RUN_FILES and not (
        name.startswith(".") and name.endswith(".tmp")))
    return Run(run.final)


@contextlib.contextmanager
def own_out(out: Path, info: D.DistInfo, device: torch.device):
    """Hold ``out`` on rank 0 for the ``with`` block (clearing what killed runs into it
    left, :func:`clear_leftovers`); every rank raises the one-line :class:`ConfigError`
    when another process holds it."""
    with contextlib.ExitStack() as stack:
        busy: ConfigError | None = None
        if info.is_main:
            try:
                stack.enter_context(hold(out, ConfigError))
                clear_leftovers(out)  # before the other ranks go on (the all-reduce waits)
            except ConfigError as e:
                busy = e
        if info.distributed:  # the other ranks learn whether rank 0 got the folder
            flag = torch.tensor([float(busy is not None)], device=device)
            if D.all_reduce_sum(flag, info).item() > 0 and busy is None:
                busy = ConfigError(f"{out} is in use: another process holds it")
        if busy is not None:
            raise busy
        yield


def clear_leftovers(out: Path) -> None:
    """Remove what killed runs into ``out`` left (``out`` is held, so no live process
    writes them): the temporary files of checkpoint and metrics writes in the run folder,
    and the staging folder of an ``overwrite`` run that never replaced the old run (not
    the one a swap interrupted between its renames still has to move in, see
    :func:`prepare_out`)."""
    for p in [*temporaries(out, "best.pt"), *temporaries(out, "last.pt"),
              out / "metrics.tmp"]:
        if p.is_file():
            p.unlink()
    stage, old = sibling(out, "overwrite"), sibling(out, "replaced")
    unfinished_swap = not out.exists() and old.is_dir() and (stage / "last.pt").is_file()
    if stage.is_dir() and not unfinished_swap:
        shutil.rmtree(stage)


def prepare_out(cfg: TrainConfig) -> Run:
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    stage, old = sibling(out, "overwrite"), sibling(out, "replaced")
    # finish a swap that a kill interrupted between its two renames
    if not out.exists() and old.is_dir() and (stage / "last.pt").is_file():
        os.rename(stage, out)
    if out.exists() and old.is_dir():
        shutil.rmtree(old)
    run = Run(out)
    if cfg.resume:
        if not run.last.is_file():
            raise ConfigError(f"cannot resume: {run.last} does not exist")
    elif run.last.exists() or run.best.exists():
        if not cfg.overwrite:
            raise ConfigError(f"{out} already holds a training run; pass --resume to "
                              "continue it or --overwrite to start over")
        # the old run stays until the new one has written its first checkpoint
        return Run(stage, final=out)
    return run


def reset_out(run: Run, cfg: TrainConfig, info: D.DistInfo) -> None:
    """Create the folder the run writes to, once every input has been validated (a
    staging folder left by an earlier, killed ``overwrite`` is cleared first: the run
    folder is held, so no live process owns it)."""
    D.barrier(info)
    if info.is_main:
        if run.final is not None and run.out.exists():
            shutil.rmtree(run.out)
        elif not cfg.resume:
            run.metrics.unlink(missing_ok=True)  # a folder without checkpoints
        with reporting_full_disk(run.out):
            run.out.mkdir(parents=True, exist_ok=True)
    D.barrier(info)


def drop_stage(run: Run, info: D.DistInfo) -> None:
    """Remove the staging folder of a new ``overwrite`` run that died before its swap
    (this process made it in :func:`reset_out`; the old run stays as it was)."""
    if info.is_main and run.final is not None:
        shutil.rmtree(run.out, ignore_errors=True)


def trim_metrics(path: Path, epochs_done: int) -> None:
    """Keep the metrics of epochs ``<= epochs_done`` (a resumed run rewrites the rest)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError, KeyError):
            if json.loads(line)["epoch"] <= epochs_done:
                keep.append(line)
    tmp = path.with_suffix(".tmp")
    try:
        with reporting_full_disk(path):
            tmp.write_text("".join(l + "\n" for l in keep))
            shutil.move(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
