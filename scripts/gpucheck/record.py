"""Checks and what is recorded about them: status, one error line, wall time, device."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[2]
for _p in (ROOT / "benchmarks", ROOT):  # bench_speed imports bench_models by its name
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


WATCHDOG_S = 120.0   # a check running longer than this gets its stacks logged


class Skip(Exception):
    """A check that cannot run here or now; its message says why."""


@dataclasses.dataclass
class Check:
    """One check: its outcome, one-line summary, details and the machine it ran on."""
    part: str
    name: str
    status: str = "pending"          # ok | failed | skipped | partial
    seconds: float = 0.0
    error: str | None = None
    result: str = ""                 # one line for the summary table
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    device_name: str = ""
    torch_version: str = torch.__version__
    cuda_version: str | None = torch.version.cuda


class Budget:
    """Soft wall-clock deadlines per part, cumulative from the start (time a part does
    not use passes to the next). ``seconds`` None: no deadline."""

    def __init__(self, seconds: float | None, shares: dict[str, float]) -> None:
        self.t0 = time.perf_counter()
        self.seconds = seconds
        total, self.ends = 0.0, {}
        for part, share in shares.items():
            total += share
            self.ends[part] = total

    def left(self, part: str) -> float:
        """Seconds left before ``part``'s deadline (infinite without a budget)."""
        if not self.seconds:
            return float("inf")
        return self.t0 + self.seconds * self.ends[part] - time.perf_counter()


def device_name(device: str) -> str:
    """The accelerator's name, or the CPU's model name (what failed, when neither)."""
    from bench_models import machine_name
    try:
        return machine_name(torch.device(device))
    except Exception as e:  # noqa: BLE001 - no such device here: every check will say so
        return f"no {device} device ({first_line(e)})"


def first_line(e: BaseException) -> str:
    """``Type: first line of the message``."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def environment(device: str) -> dict[str, Any]:
    """Machine, versions and numerics settings of this run."""
    env: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host_cpu": device_name("cpu"), "cpu_count": os.cpu_count(),
        "device": device, "device_name": device_name(device),
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
        else None,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "torch_threads": torch.get_num_threads()}
    if device == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env["gpu_memory_gib"] = round(p.total_memory / 2**30, 1)
        env["gpu_capability"] = f"{p.major}.{p.minor}"
    for mod in ("numpy", "phi", "phiml", "escnn", "xarray", "netCDF4"):
        try:
            env[mod] = getattr(__import__(mod), "__version__", "?")
        except Exception as e:  # noqa: BLE001 - recorded, the checks that need it fail
            env[mod] = f"missing ({first_line(e)})"
    try:
        env["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                       capture_output=True, text=True,
                                       timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["commit"] = None
    return env


class Recorder:
    """Runs checks, keeps their records and part results, writes the outputs after each
    check (so a run killed at its time limit still leaves its report)."""

    def __init__(self, out: Path, device: str, size: str, argv: list[str]) -> None:
        self.out, self.device, self.size, self.argv = out, device, size, argv
        out.mkdir(parents=True, exist_ok=True)
        self.log_path = out / "gpu_check.log"
        self.t0 = time.perf_counter()
        self.checks: list[Check] = []
        self.parts: dict[str, dict[str, Any]] = {}   # part -> results for the report
        self.env = environment(device)
        self.log(f"gpu_check {' '.join(argv)}: device {device} "
                 f"({self.env['device_name']}), size {size}, out {out}")

    def log(self, msg: str) -> None:
        """A time-stamped line in the log file and on stderr."""
        line = f"[{time.perf_counter() - self.t0:7.1f}s] {msg}"
        print(line, file=sys.stderr, flush=True)
        with self.log_path.open("a") as f:
            f.write(line + "\n")

    def run(self, part: str, name: str, fn: Callable[[Check], Any]) -> Any:
        """Run ``fn(check)``, which fills in ``result``/``details``; any exception is
        recorded as the check's status and error line, and the run goes on."""
        c = Check(part, name, device_name=self.env["device_name"])
        self.checks.append(c)
        self.log(f"-- {part}. {name}")
        t0 = time.perf_counter()
        value = None
        try:
            with self._watchdog():
                value = fn(c)
            c.status = "ok" if c.status == "pending" else c.status
        except Skip as e:
            c.status, c.error = "skipped", str(e)
        except Exception as e:  # noqa: BLE001 - every failure is recorded, the run goes on
            c.status, c.error = "failed", first_line(e)
            self.log(traceback.format_exc().rstrip())
        c.seconds = time.perf_counter() - t0
        self.log(f"   {c.status} in {c.seconds:.1f} s: {c.result or c.error or ''}")
        self.save()
        return value

    @contextlib.contextmanager
    def _watchdog(self):
        """Every thread's stack into the log after each ``WATCHDOG_S`` seconds of one
        check, so a hang (a collective, a compile) says where it is."""
        import faulthandler
        with self.log_path.open("a") as f:
            faulthandler.dump_traceback_later(WATCHDOG_S, repeat=True, file=f)
            try:
                yield
            finally:
                faulthandler.cancel_dump_traceback_later()

    def save(self) -> None:
        """Write ``gpu_check.json`` and ``gpu_check.md`` (atomically: temporary + rename)."""
        from .report import render
        data = {"argv": self.argv, "device": self.device, "size": self.size,
                "wall_s": round(time.perf_counter() - self.t0, 1), "environment": self.env,
                "checks": [dataclasses.asdict(c) for c in self.checks], "parts": self.parts}
        for name, text in (("gpu_check.json", json.dumps(data, indent=1, default=str)),
                           ("gpu_check.md", render(data))):
            tmp = self.out / (name + ".tmp")
            tmp.write_text(text)
            tmp.replace(self.out / name)


def run_cli(main: Callable[[list[str]], int], argv: list[str], rec: Recorder) -> str:
    """Call a project command line in this process with its stdout/stderr captured into
    the log; its last stdout line, or an error naming its exit code and last stderr line."""
    out, err = io.StringIO(), io.StringIO()
    rec.log("   $ " + " ".join(argv))
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 2
    for line in (out.getvalue() + err.getvalue()).splitlines():
        rec.log("   | " + line)
    if rc:
        last = (err.getvalue().strip().splitlines() or ["(no message)"])[-1]
        raise RuntimeError(f"exit code {rc}: {last}")
    return (out.getvalue().strip().splitlines() or [""])[-1]


def run_process(cmd: list[str], rec: Recorder, timeout: float) -> str:
    """Run ``cmd`` in a child process group from the repository root (the root on
    PYTHONPATH), output into the log; the whole group is killed after ``timeout``
    seconds. Its last stdout line, or an error with its last stderr line."""
    import signal
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    rec.log("   $ " + " ".join(cmd))
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        err += f"\nkilled after {timeout:g} s"
    for line in (out + err).splitlines():
        rec.log("   | " + line)
    if p.returncode:
        last = (err.strip().splitlines() or ["(no message)"])[-1]
        raise RuntimeError(f"exit code {p.returncode}: {last}")
    return (out.strip().splitlines() or [""])[-1]


def sync(device: str) -> None:
    """Wait for the device's queued work (timings)."""
    if device == "cuda":
        torch.cuda.synchronize()


def peak_memory_gib(device: str) -> float | None:
    """Peak CUDA memory allocated since the last reset, in GiB (None on CPU)."""
    if device != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


@dataclasses.dataclass
class Context:
    """What every part needs: where to write, the device, the size's settings, the
    deadlines and the ``torch.compile`` backend."""
    rec: Recorder
    device: str
    settings: dict[str, Any]
    budget: Budget
    compile_backend: str
    work: Path


@contextlib.contextmanager
def compile_backend(backend: str):
    """``torch.compile`` with ``backend`` inside the block (the project's code calls
    ``torch.compile(module)``), dynamo's caches cleared on entry so each compiled model
    is traced afresh at its own shapes; ``inductor`` is torch's default."""
    import functools
    from unittest import mock
    torch._dynamo.reset()
    with mock.patch.object(torch, "compile", functools.partial(torch.compile,
                                                               backend=backend)):
        yield
