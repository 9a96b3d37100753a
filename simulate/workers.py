"""Worker processes that die with the process that started them.

A ``kill -9`` of ``generate --workers N`` gives its pool workers (and the manager process
of its progress queue) no chance to be stopped: they would go on simulating, about 1 GB
each, for nobody. :func:`exit_with_parent` is their initializer: on Linux the kernel
sends them ``SIGKILL`` when the parent dies (``prctl(PR_SET_PDEATHSIG)``, via ctypes);
where that is not available a daemon thread polls the parent's pid. A parent that died
before the initializer ran (a worker starts in seconds) is caught by the same pid check.
Standard library only.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

__all__ = ["exit_with_parent", "POLL_SECONDS"]

_PR_SET_PDEATHSIG = 1   # <linux/prctl.h>
POLL_SECONDS = 0.5      # the fallback's check interval


def _kill_on_parent_death() -> bool:
    """Ask the kernel to ``SIGKILL`` this process when its parent dies; whether it
    agreed (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return False
    zero = ctypes.c_ulong(0)
    return prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(int(signal.SIGKILL)), zero, zero,
                 zero) == 0


def _watch(parent_pid: int) -> None:
    while True:
        time.sleep(POLL_SECONDS)
        if os.getppid() != parent_pid:
            os._exit(1)


def exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this process when process ``parent_pid`` (its parent, the
    one that started it) dies, at once if it already has."""
    armed = _kill_on_parent_death()
    if os.getppid() != parent_pid:  # died before the signal was armed: reparented
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch, args=(parent_pid,), daemon=True,
                         name="exit-with-parent").start()
