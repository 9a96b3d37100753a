"""Part 2: the speed table on the device, with ``benchmarks/bench_speed.py``'s own
functions: exported surrogates (fp32, bf16, bf16 + ``torch.compile``) at the benchmark's
widths and grids vs the PhiFlow simulator (batched + jit, and the eager loop) on the
same device, and the simulator on the CPU (a short timing on this machine's CPU, and the
committed figure in ``benchmarks/results/speed_run.md``)."""

from __future__ import annotations

import argparse
import contextlib
import re
from typing import Any

import torch

from .record import ROOT, Check, Context, Skip, compile_backend, first_line

PART = "2"
COMMITTED = ROOT / "benchmarks" / "results" / "speed_run.md"


def run(ctx: Context) -> None:
    """Simulator rates per device and grid, then the surrogate rows mode by mode (the
    compiled ones last: a short budget drops them first)."""
    s, rec = ctx.settings["speed"], ctx.rec
    res_part: dict[str, Any] = {"settings": s, "simulator": [], "rows": [], "committed": None}
    rec.parts[PART] = res_part
    rec.run(PART, "committed CPU simulator figure", lambda c: committed_figure(res_part, c))
    for res in s["resolutions"]:
        cpu_too = ctx.device == "cuda" and res in s["cpu_sim_resolutions"]
        for dev in [ctx.device] + (["cpu"] if cpu_too else []):
            rec.run(PART, f"simulator on {dev}, {res}x{res}",
                    lambda c, dev=dev, res=res: simulator(ctx, dev, res, res_part, c))
    prev = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = ctx.device == "cuda"  # as bench_models.py does
    try:
        for mode in s["modes"]:
            rec.run(PART, f"surrogates {mode}",
                    lambda c, mode=mode: surrogates(ctx, mode, res_part, c))
    finally:
        torch.backends.cudnn.benchmark = prev


def committed_figure(res_part: dict[str, Any], c: Check) -> None:
    """The batched simulator's CPU figure and its date, machine and grid from the
    committed ``speed_run.md``."""
    text = COMMITTED.read_text()
    row = re.search(r"\| simulator, batched \((\d+)\) \+ jit[^|]*\| *\| *([\d.]+) \|", text)
    eager = re.search(r"\| simulator, eager[^|]*\| *\| *([\d.]+) \|", text)
    date = re.search(r"Date (\d{4}-\d{2}-\d{2})", text)
    machine = re.search(r"surrogates on ([^(]+) \(", text)
    threads = re.search(r"(\d+) CPU threads", text)
    grid = re.search(r"(\d+)x\d+ `rotation`", text)
    if not (row and date and grid):
        raise RuntimeError(f"{COMMITTED.name}: no batched simulator row found")
    d = {"file": str(COMMITTED.relative_to(ROOT)), "date": date.group(1),
         "machine": machine.group(1).strip() if machine else "?",
         "threads": int(threads.group(1)) if threads else None, "res": int(grid.group(1)),
         "sims": int(row.group(1)), "batched_fps": float(row.group(2)),
         "eager_fps": float(eager.group(1)) if eager else None}
    res_part["committed"] = c.details = d
    c.result = (f"{d['batched_fps']:g} frames/s batched + jit at {d['res']}x{d['res']} "
                f"({d['machine']}, {d['threads']} threads, {d['date']})")


def simulator(ctx: Context, dev: str, res: int, res_part: dict[str, Any], c: Check) -> None:
    """``bench_speed.simulator_rates`` on ``dev`` (the CPU timing is shorter)."""
    from bench_speed import simulator_rates
    if ctx.budget.left(PART) <= 0:
        raise Skip("time budget of part 2 spent")
    s = ctx.settings["speed"]
    short = dev == "cpu" and ctx.device == "cuda"
    steps = s["cpu_sim_steps"] if short else s["sim_steps"]
    eager = s["cpu_eager_steps"] if short else s["eager_steps"]
    if dev == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device (PhiFlow would run on the CPU)")
    r = simulator_rates(res, steps, s["sims"], s["eager_sims"], dev, eager)
    from phi.torch import TORCH  # the device simulate_batch selected
    r["phiflow_device"] = TORCH.get_default_device().name
    if (TORCH.get_default_device().device_type == "GPU") != (dev == "cuda"):
        raise RuntimeError(f"PhiFlow ran on {r['phiflow_device']}, not on {dev}")
    r.update(device=dev, res=res, threads=torch.get_num_threads() if dev == "cpu" else None)
    res_part["simulator"].append(r)
    c.details = r
    c.result = (f"batched ({r['batched_sims']}) + jit {r['batched_fps']:.1f} frames/s over "
                f"{r['steps']} steps, eager {r['eager_fps']:.1f} frames/s "
                f"({r['phiflow_device']})")


def _sim_rate(res_part: dict[str, Any], dev: str, res: int) -> dict[str, Any] | None:
    for r in res_part["simulator"]:
        if r["device"] == dev and r["res"] == res:
            return r
    return None


def _row(ctx: Context, mode: str, name: str, params: float, res: int,
         res_part: dict[str, Any]) -> dict[str, Any]:
    """One surrogate's frames/s (``bench_speed.surrogate_rate``) and its ratios."""
    from bench_speed import surrogate_rate
    s = ctx.settings["speed"]
    ns = argparse.Namespace(res=res, T_in=s["T_in"], depth=s["depth"], batch=s["batch"],
                            rollout_steps=s["rollout_steps"], reps=s["reps"],
                            warmup=s["warmup"], amp="bf16" if "bf16" in mode else "none",
                            compile="compile" in mode)
    with (compile_backend(ctx.compile_backend) if ns.compile else contextlib.nullcontext()):
        r = surrogate_rate(name, params, ns, torch.device(ctx.device))
    dev_sim = _sim_rate(res_part, ctx.device, res)
    cpu_sim = _sim_rate(res_part, "cpu", res)
    sdt = (dev_sim or cpu_sim or {}).get("solver_dt", 1.0)
    r.update(mode=mode, res=res, target=params, status="ok",
             sim_time_per_s=r["fps"] * s["stride"] * sdt)
    for key, sim in (("vs_device_sim", dev_sim), ("vs_cpu_sim", cpu_sim)):
        r[key] = r["sim_time_per_s"] / (sim["batched_fps"] * sim["solver_dt"]) if sim else None
    cm = res_part["committed"]  # its solver dt is the preset's, as here
    r["vs_committed_cpu"] = (r["sim_time_per_s"] / (cm["batched_fps"] * sdt)
                             if cm and cm["res"] == res else None)
    if ns.compile:
        r["compile_backend"] = ctx.compile_backend
    return r


def surrogates(ctx: Context, mode: str, res_part: dict[str, Any], c: Check) -> None:
    """Every model, width and grid of the size in ``mode``; a failed row is recorded and
    the others go on; rows not started before the deadline are counted as skipped."""
    s = ctx.settings["speed"]
    done, skipped, errors = 0, 0, []
    for params in s["params"]:
        for res in s["resolutions"]:
            for name in s["models"]:
                if ctx.budget.left(PART) <= 0:
                    skipped += 1
                    continue
                try:
                    r = _row(ctx, mode, name, params, res, res_part)
                    done += 1
                except Exception as e:  # noqa: BLE001 - recorded, the next row goes on
                    r = {"mode": mode, "model": name, "res": res, "target": params,
                         "status": "failed", "error": first_line(e)}
                    errors.append(f"{name} {res}x{res}: {first_line(e)}")
                res_part["rows"].append(r)
                ctx.rec.save()
                ctx.rec.log(f"   {mode} {name} {res}x{res} ~{params:g}: "
                            + (f"{r['fps']:.1f} frames/s" if r["status"] == "ok"
                               else r["error"]))
                if ctx.device == "cuda":
                    torch.cuda.empty_cache()
    c.details = {"rows": done, "failed": len(errors), "skipped_for_time": skipped}
    c.result = f"{done} rows" + (f", {skipped} not started (time budget)" if skipped else "")
    if errors:
        raise RuntimeError(f"{len(errors)} rows failed, first: {errors[0]}")
    if skipped:
        c.status, c.error = "partial", f"{skipped} rows not started: time budget of part 2"
