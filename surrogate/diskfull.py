"""A write that fails for want of disk space, reported in one line naming the file.

Each writer meets a full disk in its own words: Python raises ``OSError`` (errno
``ENOSPC``, or ``EDQUOT`` over a quota), netCDF4/HDF5 a bare ``RuntimeError: NetCDF: HDF
error`` and torch's zip writer ``RuntimeError: [enforce fail at inline_container.cc:...]
... unexpected pos ...``. :func:`disk_full_error` turns any of them into one
:class:`DiskFullError` (``cannot write PATH: no space left on device``) that every
command prints as its one-line error. The two ``RuntimeError`` texts say nothing of
space, so they count only while the file system is (nearly) full: call
:func:`disk_full_error` *before* removing what the failed write left, whose bytes fill it.
Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator

__all__ = ["DiskFullError", "disk_full_error", "reporting_full_disk", "free_bytes"]

#: what a writer's ``RuntimeError`` says when a write came up short
_SHORT_WRITE_TEXTS = ("NetCDF: HDF error", "unexpected pos")
#: a file system with less free space than this counts as full (a failed write fills
#: it to the last few blocks; some file systems keep a little slack)
NEARLY_FULL_BYTES = 16 * 2**20


class DiskFullError(OSError):
    """A write failed for want of space; ``str()`` is one line naming the file."""

    def __str__(self) -> str:
        return str(self.strerror)


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes an unprivileged process may still write on the file system holding ``path``
    (its nearest existing folder); None when unknown."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except (OSError, AttributeError):  # pragma: no cover - not POSIX
        return None
    return st.f_bavail * st.f_frsize


def disk_full_error(e: BaseException, path: str | os.PathLike) -> DiskFullError | None:
    """The one-line :class:`DiskFullError` for ``e`` raised while writing ``path``, or None
    when ``e`` is no failure for want of space: an ``OSError`` with errno ``ENOSPC`` or
    ``EDQUOT``, or a writer's short-write ``RuntimeError`` while the file system holding
    ``path`` has less than :data:`NEARLY_FULL_BYTES` free."""
    if isinstance(e, DiskFullError):
        return e
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        why = ("no space left on device" if e.errno == errno.ENOSPC
               else "disk quota exceeded (no space left on device for this user)")
    elif isinstance(e, RuntimeError) and any(t in str(e) for t in _SHORT_WRITE_TEXTS):
        free = free_bytes(Path(path).parent)
        if free is None or free >= NEARLY_FULL_BYTES:
            return None
        why = "no space left on device"
    else:
        return None
    return DiskFullError(errno.ENOSPC, f"cannot write {path}: {why}")


@contextlib.contextmanager
def reporting_full_disk(path: str | os.PathLike) -> Iterator[None]:
    """Raise :class:`DiskFullError` naming ``path`` when a write in the block fails for
    want of space (see :func:`disk_full_error`); every other exception passes unchanged.
    For writes that leave nothing to remove (an append, a folder)."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        full = disk_full_error(e, path)
        if full is None:
            raise
        raise full from e
