"""Part 1: the package's own commands on the device, end to end.

simulate (a small ``rotation`` dataset) -> ``python -m train`` with ``--amp bf16`` and,
separately, with ``--compile`` -> ``--resume`` with more epochs -> ``surrogate.load`` on
the device and on the CPU, forecasts compared -> ``torchrun --nproc_per_node 1 -m
train`` -> a one-process DDP step on the backend ``train/distributed.py`` picks."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .record import (Check, Context, Skip, compile_backend, first_line, run_cli, run_process,
                     sync)

PART = "1"
#: largest |device - cpu| / max |cpu| accepted for a forecast: float32 on the device
#: (cuDNN may use TF32 in convolutions, torch's default) and bf16 autocast
TOL_FP32 = 1e-2
TOL_BF16 = 5e-2


def run(ctx: Context) -> None:
    """Every check of part 1; a check whose input is missing is skipped."""
    rec, s = ctx.rec, ctx.settings["smoke"]
    data = ctx.work / "data" / "rotation.nc"
    runs = ctx.work / "runs"
    rec.run(PART, "simulate", lambda c: simulate_data(ctx, data, c))
    rec.run(PART, "train --amp bf16", lambda c: train_run(
        ctx, data, runs / "bf16", c, ["--amp", "bf16", "--schedule", "step"]))
    rec.run(PART, "train --compile", lambda c: train_run(ctx, data, runs / "compile", c,
                                                         ["--compile"]))
    rec.run(PART, "train --resume (more epochs)", lambda c: resume(ctx, data, runs, c))
    rec.run(PART, "forecast on the device vs CPU",
            lambda c: forecast(ctx, data, runs / "bf16" / "best.pt", c))
    rec.run(PART, "torchrun --nproc_per_node 1 -m train",
            lambda c: torchrun(ctx, data, runs / "ddp", c))
    rec.run(PART, "process group + DDP step", lambda c: process_group(ctx, c))
    rec.parts[PART] = {"data": str(data), "settings": s}


def _need(path: Path, what: str) -> None:
    if not path.exists():
        raise Skip(f"no {what} ({path.name}): an earlier check failed")


def simulate_data(ctx: Context, out: Path, c: Check) -> None:
    """``python -m simulate generate rotation`` on the device."""
    import simulate.cli
    s = ctx.settings["smoke"]
    argv = ["generate", "rotation", "-o", str(out), "--resolution", str(s["resolution"]),
            "--steps", str(s["steps"]), "--save-every", str(s["save_every"]),
            "--set", f"n_magnitudes={s['n_magnitudes']}", "--device", ctx.device,
            "--no-progress", "--overwrite"]
    out.parent.mkdir(parents=True, exist_ok=True)
    run_cli(simulate.cli.main, argv, ctx.rec)
    ds = simulate.open_dataset(out)
    try:
        c.details = {"sims": int(ds.sizes["sim"]), "frames": int(ds.sizes["time"]),
                     "grid": int(ds.sizes["x"]), "heldout": int(ds["heldout"].values.sum())}
    finally:
        ds.close()
    c.result = (f"rotation {s['resolution']}x{s['resolution']}: {c.details['sims']} sims x "
                f"{c.details['frames']} frames ({s['steps']} solver steps)")


def train_argv(ctx: Context, data: Path, out: Path, epochs: int = 2) -> list[str]:
    """The train command line of the small runs (the size's model and batch)."""
    s = ctx.settings["smoke"]
    return ["--data", str(data), "--out", str(out), "--model", s["model"],
            "--hidden", str(s["hidden"]), "--depth", str(s["depth"]), "--T-in", str(s["T_in"]),
            "--K", str(s["K"]), "--batch-size", str(s["batch_size"]), "--epochs", str(epochs),
            "--max-steps-per-epoch", str(s["max_steps_per_epoch"]),
            "--test-steps", str(s["test_steps"]), "--device", ctx.device, "--no-progress"]


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The run's ``metrics.jsonl`` records."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _summarise(run_dir: Path, c: Check, epochs: int) -> None:
    """Check the run trained ``epochs`` epochs with finite losses; one-line summary."""
    m = metrics(run_dir)
    got = [r["epoch"] for r in m]
    if got != list(range(epochs + 1)):
        raise RuntimeError(f"metrics.jsonl holds epochs {got}, expected 0..{epochs}")
    if not all(math.isfinite(r["valid_rmse"]) for r in m):
        raise RuntimeError("a non-finite valid RMSE")
    c.details.update(epochs=got, valid_rmse=[r["valid_rmse"] for r in m],
                     samples_per_s=m[-1]["train_samples_per_s"])
    c.result = (f"epochs 1-{epochs}: valid RMSE {m[0]['valid_rmse']:.4g} -> "
                f"{m[-1]['valid_rmse']:.4g}, {m[-1]['train_samples_per_s']:.0f} samples/s")


def train_run(ctx: Context, data: Path, out: Path, c: Check, extra: list[str]) -> None:
    """``python -m train`` (in this process), two epochs; ``--compile`` with the chosen
    backend."""
    import train.cli
    _need(data, "dataset")
    argv = train_argv(ctx, data, out) + extra + ["--overwrite"]
    c.details["argv"] = extra
    if "--compile" in extra and ctx.device == "cpu":  # refused by design, with one line
        try:
            run_cli(train.cli.main, argv, ctx.rec)
        except RuntimeError as e:
            if "exit code 2" in str(e) and "refused on a CPU" in str(e):
                c.result = "refused on a CPU with one line, as designed"
                return
            raise
        raise RuntimeError("--compile on a CPU was not refused")
    if "--compile" in extra:
        c.details["compile_backend"] = ctx.compile_backend
        with compile_backend(ctx.compile_backend):
            run_cli(train.cli.main, argv, ctx.rec)
    else:
        run_cli(train.cli.main, argv, ctx.rec)
    _summarise(out, c, 2)


def resume(ctx: Context, data: Path, runs: Path, c: Check) -> None:
    """``--resume --epochs 3`` of the bf16 run (its step schedule may be extended;
    docs/train.md), then ``--resume`` of the finished compile run with its own epochs
    (accepted, nothing to train)."""
    import train.cli
    from surrogate.checkpoint import read_checkpoint
    _need(runs / "bf16" / "last.pt", "bf16 run")
    argv = train_argv(ctx, data, runs / "bf16", epochs=3) + ["--amp", "bf16", "--schedule",
                                                             "step", "--resume"]
    run_cli(train.cli.main, argv, ctx.rec)
    _summarise(runs / "bf16", c, 3)
    epoch = read_checkpoint(runs / "bf16" / "last.pt")["training_state"]["epoch"]
    if epoch != 3:
        raise RuntimeError(f"last.pt holds epoch {epoch} after resuming to 3")
    c.result = "2 epochs + resume to 3 (step schedule); " + c.result
    if (runs / "compile" / "last.pt").exists():
        before = metrics(runs / "compile")
        run_cli(train.cli.main, train_argv(ctx, data, runs / "compile") + ["--resume"],
                ctx.rec)
        if metrics(runs / "compile") != before:
            raise RuntimeError("resuming a finished run changed its metrics")
        c.result += "; a finished run resumes to itself"


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def forecast(ctx: Context, data: Path, ckpt: Path, c: Check) -> None:
    """``surrogate.load(ckpt, device)`` and ``load(ckpt, "cpu")``: ``forecast`` from the
    first ``T_in`` frames of two held-out simulations, ``rollout`` in float32 and under
    bf16 autocast, compared with the CPU's float32 forecast."""
    import simulate
    import surrogate
    from train.objective import autocast
    _need(ckpt, "checkpoint")
    steps = ctx.settings["smoke"]["forecast_steps"]
    dev, cpu = surrogate.load(ckpt, device=ctx.device), surrogate.load(ckpt, device="cpu")
    ds = simulate.open_dataset(data)
    try:
        held = [int(i) for i, h in enumerate(ds["heldout"].values) if h][:2] or [0, 1]
        hist = ds.isel(sim=held, time=slice(0, dev.T_in)).load()
    finally:
        ds.close()
    f_dev, f_cpu = dev.forecast(hist, steps=steps), cpu.forecast(hist, steps=steps)
    chans = list(dev.layout.channels)

    def frames(f: Any) -> torch.Tensor:  # (variable, sim, time, y, x) -> (B, T, C, H, W)
        return torch.from_numpy(f[chans].to_array().values).permute(1, 2, 0, 3, 4)

    a, b = frames(f_dev), frames(f_cpu)
    x = torch.stack([torch.from_numpy(hist[v].values) for v in chans], dim=2)
    r_dev = dev.rollout(x, steps)
    with autocast(torch.device(ctx.device), "bf16"):
        r_bf16 = dev.rollout(x, steps)
    sync(ctx.device)
    d = {"steps": steps, "rel_fp32": _relative(a, b), "rel_bf16": _relative(r_bf16.float(), b),
         "forecast_vs_rollout": _relative(r_dev, a), "tol_fp32": TOL_FP32,
         "tol_bf16": TOL_BF16, "max_abs_fp32": float((a - b).abs().max())}
    c.details.update(d)
    c.result = (f"{steps}-step forecast, max abs({ctx.device} - cpu) / max abs(cpu): float32 "
                f"{d['rel_fp32']:.1e} (tol {TOL_FP32:g}), bf16 autocast {d['rel_bf16']:.1e} "
                f"(tol {TOL_BF16:g})")
    if d["forecast_vs_rollout"] > 1e-6:
        raise RuntimeError(f"forecast and rollout differ ({d['forecast_vs_rollout']:.1e})")
    if d["rel_fp32"] > TOL_FP32 or d["rel_bf16"] > TOL_BF16:
        raise RuntimeError("device and CPU forecasts differ beyond tolerance: " + c.result)


def torchrun(ctx: Context, data: Path, out: Path, c: Check) -> None:
    """``torchrun --standalone --nproc_per_node 1 -m train`` in a child process. With
    one process ``train.distributed.setup`` joins no process group (world size 1);
    :func:`process_group` exercises the backend."""
    from surrogate.checkpoint import read_checkpoint
    _need(data, "dataset")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", "1", "-m", "train", *train_argv(ctx, data, out, epochs=1),
           "--overwrite"]
    run_process(cmd, ctx.rec, timeout=ctx.settings["smoke"]["timeout_s"])
    _summarise(out, c, 1)
    world = read_checkpoint(out / "last.pt")["metadata"]["world_size"]
    c.details["world_size"] = world
    c.result = f"world size {world}; " + c.result


def process_group(ctx: Context, c: Check) -> None:
    """A one-process group on the backend ``train.distributed.setup`` picks (``nccl`` on
    CUDA, ``gloo`` on CPU), in a child process stopped after ``timeout_s`` (a hung
    collective fails this check, not the run): an all-reduce and one ``train_step`` of a
    ``DistributedDataParallel`` rollout, as the trainer wraps it."""
    import multiprocessing as mp
    import queue
    mpc = mp.get_context("spawn")
    q = mpc.Queue()
    store = ctx.work / "process_group.store"
    store.unlink(missing_ok=True)
    p = mpc.Process(target=pg_worker, args=(ctx.device, ctx.settings["smoke"], str(store), q),
                    daemon=True)
    p.start()
    timeout = ctx.settings["smoke"]["timeout_s"]
    end, out = time.monotonic() + timeout, None
    while out is None and time.monotonic() < end:
        try:
            out = q.get(timeout=1.0)
        except queue.Empty:
            if not p.is_alive() and q.empty():  # died without an answer
                out = {"error": f"the child process died (exit code {p.exitcode})"}
    out = out or {"error": f"no answer in {timeout} s (a hang in the process group?)"}
    p.join(10)
    if p.is_alive():
        p.kill()
        p.join()
    if "error" in out:
        raise RuntimeError(out["error"])
    c.details = out
    c.result = (f"backend {out['backend']}: all-reduce and a DDP train_step "
                f"(loss {out['loss']:.3g})")


def pg_worker(device: str, s: dict[str, Any], store_path: str, q: Any) -> None:
    """The child of :func:`process_group`: puts its results, or its error line, on ``q``."""
    import torch.distributed as dist
    from surrogate import build_model
    from train import distributed as D
    from train.objective import Rollout, train_step
    dev = torch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, store=dist.FileStore(store_path, 1), rank=0,
                                world_size=1, timeout=dt.timedelta(seconds=60))
        try:
            t = torch.ones(4, device=dev)
            dist.all_reduce(t)
            model = build_model(s["model"], hidden=s["hidden"], depth=s["depth"],
                                T_in=s["T_in"]).to(dev)
            ddp = torch.nn.parallel.DistributedDataParallel(
                Rollout(model), device_ids=[dev.index or 0] if dev.type == "cuda" else None)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            n = s["resolution"]
            x = torch.randn(2, s["T_in"], 3, n, n, device=dev)
            y = torch.randn(2, s["K"], 3, n, n, device=dev)
            loss, _, norm = train_step(ddp, model, opt, x, y, info=D.DistInfo(0, 1, 0, True))
            sync(device)
        finally:
            dist.destroy_process_group()
        if t.tolist() != [1.0] * 4 or not torch.isfinite(loss):
            raise RuntimeError(f"all-reduce gave {t.tolist()}, loss {float(loss)}")
        q.put({"backend": backend, "loss": float(loss), "grad_norm": float(norm)})
    except Exception as e:  # noqa: BLE001 - the parent records it
        q.put({"error": f"{backend}: {first_line(e)}"})
