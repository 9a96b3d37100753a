"""Batched, parallel, resumable and shardable dataset generation.

The simulations of a spec (or of one shard of it, ``shard=(i, n)``) are cut into *parts*:
batches of up to ``batch_size`` simulations that share open walls and obstacle. Each
part is simulated as one PhiFlow batch and written atomically to
``<out>.parts/part-NNNNN.nc``; when all parts exist they are joined into ``out``
(atomically) and the parts folder is removed. A killed run leaves only complete part
files, so ``resume=True`` continues without recomputing them; that holds for a killed
``overwrite=True`` run too (its manifest records that it may replace ``out``). One
process at a time owns ``out`` (:func:`surrogate.folders.hold`) and first removes the
temporary files killed runs of it left. Worker processes exit when the run dies
(:mod:`simulate.workers`); a full disk raises the one-line
``surrogate.diskfull.DiskFullError`` and leaves no partial file.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .dataset import (DatasetError, build_dataset, holds_spec, open_dataset, spec_hash,
                      write_dataset)
from .spec import ScenarioSpec, SpecError, check_positive

__all__ = ["generate", "plan_parts", "parse_shard", "GenerateError", "format_summary"]


class GenerateError(SpecError):
    """Bad generation request (output exists, unwritable folder, bad shard ...)."""


def parse_shard(shard) -> tuple[int, int] | None:
    if shard is None:
        return None
    if isinstance(shard, str):
        try:
            i, n = (int(p) for p in shard.split("/"))
        except ValueError:
            raise GenerateError(f"shard must look like i/n (e.g. 0/4), got {shard!r}") from None
    else:
        i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise GenerateError(f"shard i/n needs n >= 1 and 0 <= i < n, got {i}/{n}")
    return int(i), int(n)


def plan_parts(spec: ScenarioSpec, batch_size: int, shard=None) -> list[list[int]]:
    """Simulation indices of each part: the shard's contiguous block of simulations,
    grouped by (open walls, obstacle, warm-up) in spec order, each group split into equal batches."""
    check_positive("batch_size", batch_size, GenerateError)
    idx = np.arange(len(spec.sims))
    shard = parse_shard(shard)
    if shard is not None:
        idx = np.array_split(idx, shard[1])[shard[0]]
        if len(idx) == 0:
            raise GenerateError(f"shard {shard[0]}/{shard[1]} is empty: the scenario has only {len(spec.sims)} simulations")
    groups: dict = {}
    for i in idx:
        groups.setdefault(spec.sims[i].static_key, []).append(int(i))
    return [list(map(int, batch)) for members in groups.values()
            for batch in np.array_split(members, -(-len(members) // batch_size))]


def _solver_steps(spec: ScenarioSpec, part: list[int]) -> int:
    """Solver steps one part runs: the warm-up its simulations share, then ``steps``."""
    return spec.sims[part[0]].warmup_steps + spec.steps


def _part_path(parts_dir: Path, k: int) -> Path:
    return parts_dir / f"part-{k:05d}.nc"


def _part_done(path: Path, h: str, k: int, indices: list[int]) -> bool:
    """Whether ``path`` holds part ``k`` (simulations ``indices``) of the spec hashed ``h``."""
    if not path.exists():
        return False
    try:
        with open_dataset(path) as d:
            return (d.attrs.get("spec_hash") == h and int(d.attrs.get("part", -1)) == k
                    and list(map(int, d["sim"].values)) == list(indices))
    except DatasetError:
        return False


def _run_part(spec_json: str, k: int, indices: list[int], path: str, device: str, queue=None,
              threads: int | None = None) -> dict:
    """Simulate one part and write it atomically (also the worker-process entry point)."""
    if threads:
        import torch
        torch.set_num_threads(threads)
    from .phiflow_step import cause_fields, simulate_batch
    spec = ScenarioSpec.from_json(spec_json)
    causes = cause_fields(spec, [spec.sims[i] for i in indices])
    t0 = time.perf_counter()
    on_step = (lambda: queue.put(1)) if queue is not None else None
    result = simulate_batch(spec, indices, causes=causes, device=device, on_step=on_step)
    seconds = time.perf_counter() - t0
    write_dataset(build_dataset(spec, indices, result, causes, extra_attrs={"part": k}), path)
    return {"part": k, "sims": len(indices), "seconds": seconds, **result["stats"]}


_GIB = 1024 ** 3
_PROCESS_BYTES = 0.5 * _GIB     # torch + PhiFlow in one process
_SOLVER_ARRAYS = 64             # float64 fields per simulation alive during a step


def memory_estimate(spec: ScenarioSpec, parts: list[list[int]], workers: int = 1) -> int:
    """Peak bytes of :func:`generate`: the largest parts simulating at once (solver
    arrays and stored float32 frames) or the final join (all frames, read and written)."""
    cells = spec.resolution ** 2
    per_sim = spec.n_frames * 3 * cells * 4     # u, v, density in float32
    part = max(map(len, parts), default=0) * (2 * per_sim + _SOLVER_ARRAYS * cells * 8)
    join = 2 * sum(map(len, parts)) * per_sim
    return int(max(workers * (_PROCESS_BYTES + part), _PROCESS_BYTES + join))


def _check_memory(spec: ScenarioSpec, parts: list[list[int]], workers: int) -> None:
    # the ground floor's one reading of free memory (it loads torch, as the solver does)
    from surrogate.model_size import available_memory
    need = memory_estimate(spec, parts, workers)
    have = available_memory()
    if have is not None and need > have:
        n = sum(map(len, parts))
        raise GenerateError(
            f"this run needs about {need / _GIB:.1f} GiB of memory ({n} simulations x "
            f"{spec.n_frames} frames at {spec.resolution}x{spec.resolution}), but only "
            f"{have / _GIB:.1f} GiB are available: lower resolution or steps, raise "
            "save_every, use fewer workers or split the run with --shard i/n")


def _check_writable(out: Path):
    parent = out.parent
    if not parent.exists():
        try:  # like `mkdir -p`: a fresh checkout has no data/ folder yet
            parent.mkdir(parents=True, exist_ok=True)
        except NotADirectoryError:
            raise GenerateError(f"{parent} cannot be made: part of the path is a file, "
                                "not a folder") from None
        except OSError as e:
            raise GenerateError(f"output folder {parent} cannot be created: "
                                f"{e.strerror}") from None
    if not parent.is_dir():
        raise GenerateError(f"{parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GenerateError(f"output folder {parent} is not writable")
    if out.is_dir():
        raise GenerateError(f"output {out} is a folder; give a file name such as {out / 'data.nc'}")


def generate(spec: ScenarioSpec, out: str | Path, *, workers: int = 1, batch_size: int = 16,
             shard=None, resume: bool = False, overwrite: bool = False, progress: bool = True,
             max_parts: int | None = None, device: str = "auto", threads: int | None = None,
             keep_parts: bool = False) -> dict:
    """Simulate ``spec`` and write the dataset to ``out`` (NetCDF4). Returns a summary dict.

    ``workers``: processes; ``threads``: torch threads per process (default 1: the
    many small ops of the unrolled, compiled CG gain little from threads and slow down
    badly when cores are shared -- use workers for parallelism); ``shard="i/n"``: only the i-th of n contiguous blocks of
    simulations; ``resume``: keep finished parts of an interrupted run of the same spec
    and shard (also of an interrupted ``overwrite`` run, which then replaces ``out``);
    ``overwrite``: replace ``out`` (without ``resume``: start the parts afresh);
    ``max_parts``: compute at most this many new parts, then stop (the output stays
    resumable). Another process generating into ``out`` is refused (GenerateError)."""
    spec.validate()
    out = Path(out)
    shard_t = parse_shard(shard)
    check_positive("workers", workers, GenerateError)
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)
                                or threads <= 0):
        raise GenerateError(f"threads must be a positive integer, got {threads!r}")
    if max_parts is not None and max_parts < 0:
        raise GenerateError(f"max_parts must be non-negative, got {max_parts}")
    from surrogate.devices import DeviceError, resolve_device  # torch: the solver's anyway
    try:
        device = str(resolve_device(device))
    except DeviceError as e:
        raise GenerateError(str(e)) from None
    parts = plan_parts(spec, batch_size, shard_t)
    _check_memory(spec, parts, workers if workers > 1 and len(parts) > 1 else 1)
    _check_writable(out)
    from surrogate.folders import hold  # the ground floor (torch: the solver needs it anyway)

    with hold(out, GenerateError):
        _clear_leftovers(out)
        return _generate_held(spec, out, parts, shard_t, resume=resume, overwrite=overwrite,
                              workers=workers, progress=progress, max_parts=max_parts,
                              device=device, threads=threads, keep_parts=keep_parts)


def _clear_leftovers(out: Path) -> None:
    """Remove the temporary files a killed run of ``out`` left (``out`` is held, so no
    live process writes them): ``.NAME.XXXXXXXX.tmp`` beside ``out`` (the final join),
    and in the parts folder those of its part files and manifest. Finished parts stay."""
    from surrogate.folders import clear_leftovers, temporaries

    clear_leftovers(out)
    parts_dir = out.with_name(out.name + ".parts")
    for p in [*temporaries(parts_dir), parts_dir / "manifest.tmp"]:
        if p.is_file():
            p.unlink()


def _read_manifest(parts_dir: Path) -> dict:
    """The manifest of a parts folder; ``{}`` when there is none (or it is unreadable)."""
    try:
        m = json.loads((parts_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return m if isinstance(m, dict) else {}


def _generate_held(spec: ScenarioSpec, out: Path, parts: list[list[int]], shard_t, *,
                   resume: bool, overwrite: bool, **options) -> dict:
    """:func:`generate` once ``out`` is held: decide what happens to an existing output
    and parts folder, then compute the parts (removing a parts folder this call made
    when it fails before finishing a part)."""
    parts_dir = out.with_name(out.name + ".parts")
    shard_s = f"{shard_t[0]}/{shard_t[1]}" if shard_t else "0/1"
    t_start = time.perf_counter()
    m = _read_manifest(parts_dir)
    same = m.get("spec_hash") == spec_hash(spec) and m.get("shard") == shard_s
    if out.exists() and not overwrite and not (resume and same and m.get("overwrite")):
        if resume and holds_spec(out, spec, shard_s) and not parts_dir.exists():
            return {"scenario": spec.name, "output": str(out), "complete": True,
                    "already_complete": True, "sims": sum(map(len, parts)), "parts_computed": 0,
                    "parts_reused": len(parts), "seconds": 0.0}
        raise GenerateError(f"output {out} exists (pass --overwrite to replace it)")
    if parts_dir.exists():
        if overwrite and not (resume and same):
            shutil.rmtree(parts_dir)
        elif not resume:
            raise GenerateError(f"partial output {parts_dir} from an interrupted run exists "
                                f"(pass --resume to continue it or --overwrite to start again)")
    try:
        new_parts_dir = not parts_dir.exists()
        parts_dir.mkdir(exist_ok=True)
    except OSError as e:
        raise GenerateError(f"cannot create {parts_dir}: {e.strerror}") from None
    try:
        return _generate_parts(spec, out, parts, parts_dir, shard_t, shard_s, t_start,
                               overwrite=overwrite, **options)
    except BaseException:
        # a run that failed before finishing any part leaves nothing to resume: remove the
        # folder it made, so that it cannot block the next (valid) run
        if new_parts_dir and parts_dir.is_dir() and not any(parts_dir.glob("part-*.nc")):
            shutil.rmtree(parts_dir, ignore_errors=True)
        raise


def _write_manifest(path: Path, manifest: dict) -> None:
    from surrogate.diskfull import reporting_full_disk

    tmp = path.with_suffix(".tmp")
    try:
        with reporting_full_disk(path):
            tmp.write_text(json.dumps(manifest))
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _generate_parts(spec: ScenarioSpec, out: Path, parts: list[list[int]], parts_dir: Path,
                    shard_t, shard_s: str, t_start: float, *, workers, progress, max_parts, device,
                    threads, keep_parts, overwrite: bool = False) -> dict:
    """Compute the missing parts of ``parts_dir`` and, when all exist, join them. The
    manifest records the spec, the batching and whether the run may replace ``out``."""
    h = spec_hash(spec)
    parts = _manifest_parts(parts_dir, h, shard_s, parts, overwrite)

    done, todo = [], []
    for k, indices in enumerate(parts):
        (done if _part_done(_part_path(parts_dir, k), h, k, indices) else todo).append(k)
    if max_parts is not None:
        todo = todo[:max_parts]

    stats = _compute_parts(spec, parts, todo, parts_dir, workers=workers, progress=progress,
                           device=device, threads=threads)

    remaining = [k for k in range(len(parts)) if not _part_path(parts_dir, k).exists()]
    summary = {
        "scenario": spec.name, "output": str(out), "shard": shard_s,
        "sims": sum(map(len, parts)), "frames_per_sim": spec.n_frames, "steps": spec.steps,
        "save_every": spec.save_every, "resolution": spec.resolution,
        "parts_computed": len(stats), "parts_reused": len(done), "parts_remaining": len(remaining),
        "complete": not remaining, "already_complete": False,
        "compute_seconds": sum(s["seconds"] for s in stats),
        "sim_steps_computed": sum(len(parts[s["part"]]) * _solver_steps(spec, parts[s["part"]])
                                  for s in stats),
        "max_residual_over_tolerance": max((s["max_residual_over_tolerance"] for s in stats), default=float("nan")),
    }
    if not remaining:
        summary.update(_join_parts(parts_dir, len(parts), out, shard_s if shard_t is not None
                                   else None, keep_parts))
    summary["seconds"] = time.perf_counter() - t_start
    cs = summary["compute_seconds"]
    summary["frames_per_second"] = summary["sim_steps_computed"] / cs if cs > 0 else float("nan")
    return summary


def _manifest_parts(parts_dir: Path, h: str, shard_s: str, parts: list[list[int]],
                    overwrite: bool) -> list[list[int]]:
    """The batching of the parts: the manifest's, when a run of the same spec and shard
    began it (so a resumed run is identical), else ``parts``, recorded in a new one
    together with whether the run may replace the output."""
    manifest_path = parts_dir / "manifest.json"
    if not manifest_path.exists():
        _write_manifest(manifest_path, {"spec_hash": h, "shard": shard_s, "parts": parts,
                                        "overwrite": bool(overwrite)})
        return parts
    old = json.loads(manifest_path.read_text())
    if old.get("spec_hash") != h or old.get("shard") != shard_s:
        raise GenerateError(f"partial output {parts_dir} was made from a different spec or shard "
                            f"(pass --overwrite to start again)")
    if overwrite and not old.get("overwrite"):
        _write_manifest(manifest_path, {**old, "overwrite": True})
    return old["parts"]


def _compute_parts(spec: ScenarioSpec, parts: list[list[int]], todo: list[int],
                   parts_dir: Path, *, workers, progress, device, threads) -> list[dict]:
    """Simulate and write parts ``todo``, in this process or a pool of ``workers``, with a
    progress bar over solver steps; each part's stats."""
    spec_json = spec.to_json()
    stats = []
    total_steps = sum(_solver_steps(spec, parts[k]) for k in todo)
    from tqdm.auto import tqdm
    bar = tqdm(total=total_steps, unit="step", desc=f"{spec.name} ({sum(len(parts[k]) for k in todo)} sims)",
               disable=not progress or total_steps == 0, dynamic_ncols=True)
    try:
        if workers == 1 or len(todo) <= 1:
            from surrogate.threads import torch_threads
            queue = SimpleNamespace(put=bar.update) if progress else None    # advances the bar
            with torch_threads(threads or 1):
                for k in todo:
                    stats.append(_run_part(spec_json, k, parts[k], str(_part_path(parts_dir, k)),
                                           device, queue))
        else:
            stats = _run_pool(spec_json, todo, parts, parts_dir, device, workers, threads, bar)
    finally:
        bar.close()
    return stats


def _join_parts(parts_dir: Path, n_parts: int, out: Path, shard: str | None,
                keep_parts: bool) -> dict:
    """Join the finished parts into ``out`` (atomically); the held-out count and size."""
    ds = open_dataset([_part_path(parts_dir, k) for k in range(n_parts)], load=True)
    ds.attrs.pop("part", None)
    if shard is not None:
        ds.attrs["shard"] = shard
    ds.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_dataset(ds, out)
    extra = {"heldout": int(ds["heldout"].values.sum()), "bytes": out.stat().st_size}
    ds.close()
    if not keep_parts:
        shutil.rmtree(parts_dir)
    return extra


def _run_pool(spec_json, todo, parts, parts_dir, device, workers, threads, bar) -> list[dict]:
    """Compute parts ``todo`` in ``workers`` spawned processes; each of them, and the
    manager process of the progress queue, exits when this process dies
    (:func:`simulate.workers.exit_with_parent`: a ``kill -9`` orphans none)."""
    import multiprocessing as mp
    from multiprocessing.managers import SyncManager

    from .workers import exit_with_parent

    ctx = mp.get_context("spawn")
    manager = SyncManager(ctx=ctx)
    manager.start(exit_with_parent, (os.getpid(),))
    queue = manager.Queue()
    stats = []
    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                               initializer=exit_with_parent, initargs=(os.getpid(),))
    try:
        pending = {pool.submit(_run_part, spec_json, k, parts[k], str(_part_path(parts_dir, k)),
                               device, queue, threads or 1) for k in todo}
        while pending:
            finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            n = 0
            while not queue.empty():
                n += queue.get_nowait()
            bar.update(n)
            for f in finished:
                stats.append(f.result())     # re-raises a worker's SimulationError
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        manager.shutdown()
    return stats


def format_summary(s: dict) -> str:
    if s.get("already_complete"):
        return f"{s['output']}: already complete ({s['sims']} simulations); nothing to do"
    lines = [f"scenario {s['scenario']} (shard {s['shard']}): {s['sims']} simulations x {s['steps']} steps "
             f"at {s['resolution']}x{s['resolution']}, every {s['save_every']} stored -> "
             f"{s['frames_per_sim']} frames each",
             f"parts: {s['parts_computed']} computed, {s['parts_reused']} reused, "
             f"{s['parts_remaining']} remaining"]
    if s["parts_computed"]:
        lines.append(f"solver: {s['sim_steps_computed']} sim-steps in {s['compute_seconds']:.1f} s "
                     f"= {s['frames_per_second']:.1f} frames/s; max residual / tolerance "
                     f"{s['max_residual_over_tolerance']:.3f}")
    if s["complete"]:
        lines.append(f"wrote {s['output']} ({s['bytes'] / 1e6:.1f} MB, {s['heldout']} held-out sims) "
                     f"in {s['seconds']:.1f} s")
    else:
        lines.append(f"stopped early: rerun with --resume to finish {s['output']}")
    return "\n".join(lines)
