"""``gpu_check.md``: machine and date first, then every check, then each part's tables."""

from __future__ import annotations

from typing import Any

TITLES = {"1": "1. Smoke tests on the device", "2": "2. Speed table",
          "3": "3. Paper-scale throughput probe"}


def _cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ") if v not in (None, "") else ""


def header(data: dict[str, Any]) -> list[str]:
    """Title, machine, date, versions and the numerics settings."""
    e = data["environment"]
    gpu = (f", {e.get('gpu_memory_gib')} GiB, compute capability {e.get('gpu_capability')}"
           if e.get("gpu_memory_gib") else "")
    n = len(data["checks"])
    ok = sum(c["status"] == "ok" for c in data["checks"])
    return [
        "# GPU check (`scripts/gpu_check.py`)", "",
        f"**Machine:** {e['device_name']} ({data['device']}{gpu}); host CPU {e['host_cpu']}, "
        f"{e['cpu_count']} cores.  ",
        f"**Date:** {e['date']}; size `{data['size']}`; {ok} of {n} checks ok; "
        f"{data['wall_s']:.0f} s in all.  ",
        f"**Command:** `python scripts/gpu_check.py {' '.join(data['argv'])}`", "",
        "## Environment", "",
        f"- torch {e['torch']}, CUDA {e['cuda']}, cuDNN {e['cudnn']}, Python {e['python']}; "
        f"numpy {e['numpy']}, PhiFlow {e['phi']}, phiml {e['phiml']}, escnn {e['escnn']}, "
        f"xarray {e['xarray']}, netCDF4 {e['netCDF4']}; commit {e.get('commit')}",
        f"- float32 numerics: cuDNN TF32 {e['cudnn_allow_tf32']}, matmul TF32 "
        f"{e['matmul_allow_tf32']} (torch defaults; CUDA convolutions in \"fp32\" may run in "
        f"TF32); {e['torch_threads']} torch CPU threads", ""]


def summary(checks: list[dict[str, Any]]) -> list[str]:
    """One row per check: status, seconds, result or error line."""
    out = ["## Summary", "", "| part | check | status | seconds | result / error |",
           "|---|---|---|---:|---|"]
    for c in checks:
        text = c["result"] if c["status"] == "ok" else (c["error"] or c["result"])
        if c["status"] == "partial":
            text = f"{c['result']} ({c['error']})"
        out.append(f"| {c['part']} | {_cell(c['name'])} | **{c['status']}** | "
                   f"{c['seconds']:.1f} | {_cell(text)} |")
    return out + [""]


def part1(data: dict[str, Any]) -> list[str]:
    """The smoke tests' settings and tolerances."""
    p = data["parts"].get("1")
    if not p:
        return []
    s = p["settings"]
    return [f"## {TITLES['1']}", "",
            f"`rotation` at {s['resolution']}x{s['resolution']} ({s['n_magnitudes']} "
            f"magnitudes x 4 walls, {s['steps']} solver steps, every {s['save_every']} "
            f"stored), simulated with `python -m simulate generate --device "
            f"{data['device']}`; `{s['model']}` (hidden {s['hidden']}, depth {s['depth']}, "
            f"T_in {s['T_in']}, K {s['K']}, batch {s['batch_size']}, "
            f"{s['max_steps_per_epoch']} steps per epoch) trained with `python -m train` "
            "in this process (bf16 with the step schedule, so that `--resume --epochs 3` "
            "may extend it; `--compile` with the default cosine schedule), and under "
            "`torchrun --standalone --nproc_per_node 1` in a child process. With one "
            "process `train.distributed.setup` starts no process group, so the last check "
            "starts a one-process group itself, in a child process with a time limit, on "
            "the backend the trainer picks (`nccl` on CUDA, `gloo` on CPU) and runs an "
            "all-reduce and a DDP-wrapped `train_step`. Forecasts: the "
            "bf16 run's `best.pt` loaded with `surrogate.load(path, device=...)` on the "
            "device and on the CPU, `forecast` and `rollout` from two held-out "
            "simulations; tolerance on max |device - cpu| / max |cpu|: 1e-2 in float32 "
            "(TF32 convolutions allowed), 5e-2 under bf16 autocast.", ""]


def _f(v: float | None, fmt: str = ".1f") -> str:
    return "" if v is None else format(v, fmt)


def _x(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}x"


def _amp(amp: str) -> str:
    return "fp32" if amp == "none" else amp


def part2(data: dict[str, Any]) -> list[str]:
    """Simulator rates and the surrogate rows, with their ratios."""
    p = data["parts"].get("2")
    if not p:
        return []
    s = p["settings"]
    out = [f"## {TITLES['2']}", "",
           f"`benchmarks/bench_speed.py`'s `simulator_rates` and `surrogate_rate`: exported "
           f"surrogates, batch {s['batch']}, T_in {s['T_in']}, depth {s['depth']}, "
           f"{s['rollout_steps']}-step rollouts, best of {s['reps']} after {s['warmup']} "
           f"warm-up steps; one surrogate frame spans {s['stride']} solver steps. Simulator: "
           f"`rotation`, {s['sims']} simulations batched + jit (float64 CG), timed over "
           f"whole runs after 8 steps of tracing, and the eager loop one simulation at a "
           f"time. Ratios compare simulated time per second at the same grid. "
           f"`torch.compile` backend: {data['environment'].get('compile_backend')} (the "
           f"same in part 1's `--compile` run).", "",
           "| simulator | grid | batched + jit frames/s | eager frames/s | steps |",
           "|---|---|---:|---:|---:|"]
    for r in p["simulator"]:
        dev = r["device"] + (f" ({r['threads']} threads)" if r.get("threads") else "")
        out.append(f"| {dev} | {r['res']}x{r['res']} | {r['batched_fps']:.1f} | "
                   f"{r['eager_fps']:.1f} | {r['steps']} |")
    cm = p.get("committed")
    if cm:
        out += ["", f"Committed CPU figure (`{cm['file']}`, {cm['date']}, {cm['machine']}, "
                f"{cm['threads']} threads): {cm['batched_fps']:g} frames/s batched + jit at "
                f"{cm['res']}x{cm['res']}."]
    out += ["", "| mode | model | grid | parameters | frames/s | simulated time / s | "
            "vs simulator on device | vs simulator on CPU (this run) | vs committed CPU "
            "figure |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in p["rows"]:
        if r["status"] != "ok":
            out.append(f"| {r['mode']} | {r['model']} | {r['res']}x{r['res']} | "
                       f"~{r['target']:g} | failed: {_cell(r['error'])} | | | | |")
            continue
        out.append(f"| {r['mode']} | {r['model']} | {r['res']}x{r['res']} | "
                   f"{r['params']:,} | {r['fps']:.1f} | {r['sim_time_per_s']:.1f} | "
                   f"{_x(r.get('vs_device_sim'))} | {_x(r.get('vs_cpu_sim'))} | "
                   f"{_x(r.get('vs_committed_cpu'))} |")
    return out + [""]


def part3(data: dict[str, Any]) -> list[str]:
    """The plan, the timed steps per model and precision, the projection."""
    p = data["parts"].get("3")
    if not p or not p.get("plan"):
        return []
    pl, sc = p["plan"], p["plan"]["scale"]
    out = [f"## {TITLES['3']}", "",
           f"Plan of `bench_accuracy.py --scale paper` (studies {', '.join(pl['studies'])}; "
           f"seeds {pl['seeds']}): {pl['runs']} runs, {pl['total_steps']:,} optimiser steps "
           f"({sc['epochs']} epochs), {pl['train_flop']:.3g} training FLOP = "
           f"{pl['hours_at_100_tflops']:.2f} h at a sustained 100 TFLOP/s (at full size this "
           f"is the README's \"about 9 GPU-hours\"). Timed: `train.objective.train_step` at {sc['resolution']}x"
           f"{sc['resolution']}, T_in {sc['T_in']}, K {sc['K']}, on a random batch on the "
           "device; variants with breaking inputs are timed as their base model; data "
           "loading, validation and test rollouts are not included; early stopping can only "
           "shorten the runs.", "",
           "| amp | model | parameters | planned steps | timed steps | ms / step | "
           "samples/s | TFLOP/s | peak GiB |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for amp, pr in p["probe"].items():
        for m, r in pr["rows"].items():
            fl = pl["flop_per_step"].get(m)
            tf = fl / r["s_per_step"] / 1e12 if fl else None
            out.append(f"| {_amp(amp)} | {m} | {r['params']:,} | {pl['steps_by_model'].get(m, 0):,} "
                       f"| {r['steps']} | {r['s_per_step'] * 1e3:.1f} | "
                       f"{r['samples_per_s']:.1f} | {_f(tf, '.2f')} | {_f(r['peak_gib'], 'g')} |")
    for amp, pr in p["probe"].items():
        for m, err in pr.get("errors", {}).items():
            out.append(f"| {_amp(amp)} | {m} | failed: {_cell(err)} | | | | | | |")
    out.append("")
    if data["size"] != "full":
        out += [f"Size `{data['size']}`: tiny models at a tiny grid, so the figures below "
                "only show that the projection runs; they project nothing.", ""]
    if pl.get("left_out"):
        out += [f"Left out of the plan (escnn could not be imported): "
                f"{', '.join(pl['left_out'])}; the figures below do not count their runs.", ""]
    for amp, v in p.get("projection", {}).items():
        gap = f"; no timing for {', '.join(v['missing'])}" if v.get("missing") else ""
        how = " (as the benchmark trains: no `--amp`)" if amp == "none" else \
            " (if the benchmark trained with `--amp bf16`)"
        out.append(f"- {_amp(amp)}{how}: **{v['gpu_hours']:.3g} device-hours** for the "
                   f"plan's training steps ({v['tflops']:.3g} TFLOP/s sustained; "
                   f"{v['vs_readme']:.2f}x the README's 9 h){gap}")
    return out + [""]


def render(data: dict[str, Any]) -> str:
    """The whole report."""
    lines = header(data) + summary(data["checks"]) + part1(data) + part2(data) + part3(data)
    lines += ["## Files", "", "`gpu_check.json` (every number above, and each check's "
              "details) and `gpu_check.log` (the run's log, the commands' output and "
              "tracebacks) beside this file.", ""]
    return "\n".join(lines)
