"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors: one intra-op thread avoids waiting on a busy second core."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


_HOLDER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("folders", sys.argv[1])
folders = importlib.util.module_from_spec(spec)
spec.loader.exec_module(folders)  # the real helper, without importing torch
with folders.hold(sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture()
def hold_elsewhere():
    """``hold(path)`` makes another process own output ``path`` (surrogate.folders.hold)
    and returns it (a ``Popen``); every such process is killed with SIGKILL at the end."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    folders = Path(__file__).resolve().parents[1] / "surrogate" / "folders.py"
    procs: list[subprocess.Popen] = []

    def hold(path) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folders), str(path)],
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "held"
        return p

    yield hold
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait()
