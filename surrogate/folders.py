"""Who owns an output, and how a finished one replaces the old.

:func:`hold` gives an output (a run folder, a report folder, a dataset file) one owner:
an OS lock (``fcntl.flock``) on ``.NAME.lock`` beside it, held for the whole run and
released by the kernel when the process ends, however it ends. :func:`swap_in` replaces a
folder by a staged one by two renames (train ``--overwrite`` stages the new run in
``.NAME.overwrite``); :func:`move_files_in` moves a staged report's files into a folder
that holds other files too (evaluate writes its report in ``.NAME.partial``).
:func:`clear_leftovers` removes what a killed run of an output left beside it (its
temporary files, its staging folders), once the output is held."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
from pathlib import Path
from typing import Callable, Iterable, Iterator

__all__ = ["sibling", "swap_in", "move_files_in", "hold", "temporaries", "clear_leftovers"]


def sibling(out: Path, tag: str) -> Path:
    """The hidden sibling ``.NAME.tag`` of ``out``."""
    return out.parent / f".{out.name}.{tag}"


def swap_in(stage: Path, out: Path, carry: Callable[[str], bool] | None = None) -> None:
    """Replace folder ``out`` (when there is one) by ``stage``: entries of ``out`` whose
    name ``carry`` accepts and that ``stage`` lacks are moved over first, then ``out`` is
    renamed to ``.NAME.replaced``, ``stage`` to ``out``, and the old folder removed."""
    old = sibling(out, "replaced")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        for p in out.iterdir() if carry is not None else ():
            if carry(p.name) and not (stage / p.name).exists():
                os.rename(p, stage / p.name)
        os.rename(out, old)
    os.rename(stage, out)
    if old.exists():
        shutil.rmtree(old)


def move_files_in(stage: Path, out: Path, old: Iterable[str], last: str) -> None:
    """Move the files of folder ``stage`` into folder ``out`` and remove ``stage``; the
    files of ``out`` named in ``old`` (an earlier set of staged files) go first, every
    other entry of ``out`` stays. ``last`` leaves first and arrives last, so a folder
    holding it holds a complete set. A missing ``out`` is ``stage`` renamed."""
    if not out.exists():
        os.rename(stage, out)
        return
    new = sorted(p.name for p in stage.iterdir())
    for name in [last, *(n for n in old if n not in new)]:
        p = out / name
        if os.path.basename(name) == name and (p.is_file() or p.is_symlink()):
            p.unlink()
    for name in sorted(new, key=lambda n: n == last):
        os.replace(stage / name, out / name)
    stage.rmdir()


def temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """The files in ``folder`` named like the temporary files of an atomic write of file
    ``name`` (``tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")``: ``.NAME.`` then 8
    random letters, digits or ``_``, then ``.tmp``); of any file when ``name`` is None.
    Those of another name never match (``.a.nc.x.12345678.tmp`` is not one of ``a.nc``)."""
    stem = r"[^/]+" if name is None else re.escape(name)
    pattern = re.compile(rf"\.{stem}\.[a-z0-9_]{{8}}\.tmp")
    try:
        entries = list(Path(folder).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(p for p in entries if pattern.fullmatch(p.name) and p.is_file()
                  and not p.is_symlink())


def clear_leftovers(out: str | os.PathLike, *tags: str) -> list[Path]:
    """Remove what earlier runs of output ``out`` (file or folder) left beside it: the
    temporary files of its atomic writes (:func:`temporaries`) and its sibling staging
    folders ``.NAME.TAG`` for ``tags``. Call it only while holding ``out``
    (:func:`hold`): then no live process writes them. Entries of other outputs are never
    touched. Returns the paths removed."""
    target = Path(out).resolve()
    gone = temporaries(target.parent, target.name)
    for p in gone:
        p.unlink(missing_ok=True)
    for tag in tags:
        stage = sibling(target, tag)
        if stage.is_dir() and not stage.is_symlink():
            shutil.rmtree(stage)
            gone.append(stage)
        elif stage.is_file() or stage.is_symlink():
            stage.unlink()
            gone.append(stage)
    return gone


def _holder(path: Path) -> str:
    """`` (pid N)`` of the process that holds lock file ``path``, when it wrote one."""
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def _lock(path: Path) -> int | None:
    """An open descriptor of ``path`` holding its exclusive lock, or None when another
    process holds it. Retries when the file was removed or replaced meanwhile (a holder
    that released it), so the lock is always taken on the file at ``path``."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _why_not_writable(folder: Path, e: OSError) -> str:
    """Why nothing can be written in ``folder`` (or one of its parents), in words."""
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                return f"{p} is a file, not a folder"
            if p != folder:
                return f"{p / folder.relative_to(p).parts[0]} cannot be created in {p} " \
                       f"({e.strerror or e})"
            break
    return f"{folder} is not writable ({e.strerror or e})"


@contextlib.contextmanager
def hold(out: str | os.PathLike, error: type[Exception] = RuntimeError) -> Iterator[Path]:
    """Own output ``out`` (file or folder) for the ``with`` block: take the lock on
    ``.NAME.lock`` beside it (its parent folder is created) or raise ``error`` with one
    line when another process holds it. The lock file sits outside ``out`` so swapping
    ``out`` never touches it; the kernel drops the lock when the process dies, so a
    ``kill -9`` leaves no stale lock. Yields the lock file's path."""
    target = Path(out).resolve()
    path = sibling(target, "lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _lock(path)
    except OSError as e:
        raise error(f"cannot write {out}: {_why_not_writable(path.parent, e)}") from None
    if fd is None:
        raise error(f"{out} is in use: another process{_holder(path)} holds it; wait "
                    "for it to finish or choose another output")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # before unlocking: a waiting process then retries on a new file
        os.close(fd)
