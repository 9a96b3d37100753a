"""A full disk ends a write in one line naming the file and leaves no partial file; a
held output's leftovers of killed runs are cleared (surrogate.diskfull, .folders)."""

import errno
import pickle

import pytest
import torch

import surrogate.diskfull as dfull
from surrogate import build_model
from surrogate.checkpoint import read_checkpoint, save
from surrogate.diskfull import DiskFullError, disk_full_error
from surrogate.folders import clear_leftovers, temporaries

TORCH_SHORT_WRITE = ("[enforce fail at inline_container.cc:672] . unexpected pos 4864 vs "
                     "4755")


def test_each_writers_words_for_a_full_disk(tmp_path, monkeypatch):
    path = tmp_path / "x.nc"
    e = disk_full_error(OSError(errno.ENOSPC, "No space left on device"), path)
    assert str(e) == f"cannot write {path}: no space left on device"
    assert isinstance(e, OSError) and e.errno == errno.ENOSPC
    assert "disk quota" in str(disk_full_error(OSError(errno.EDQUOT, "quota"), path))
    for text in ("NetCDF: HDF error", TORCH_SHORT_WRITE):
        # these texts say nothing of space: they count only on a (nearly) full disk
        assert disk_full_error(RuntimeError(text), path) is None
        monkeypatch.setattr(dfull, "free_bytes", lambda p: 4096)
        assert str(disk_full_error(RuntimeError(text), path)) == str(e)
        monkeypatch.undo()
    for other in (OSError(errno.EACCES, "Permission denied"), ValueError("x"),
                  RuntimeError("something else")):
        assert disk_full_error(other, path) is None
    back = pickle.loads(pickle.dumps(e))  # as a worker process hands it back
    assert type(back) is DiskFullError and str(back) == str(e)


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   RuntimeError(TORCH_SHORT_WRITE)])
def test_checkpoint_on_a_full_disk(tmp_path, monkeypatch, error):
    model = build_model("unet", T_in=2, hidden=4, depth=2)
    path = save(model, tmp_path / "best.pt")
    before = path.read_bytes()

    def full(obj, f, *a, **k):
        f.write(b"\0" * 1000)  # what reached the disk before it filled up
        raise error
    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(dfull, "free_bytes", lambda p: 0)
    with pytest.raises(DiskFullError) as e:
        save(model, path)
    assert str(e.value) == f"cannot write {path}: no space left on device"
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no partial file
    assert path.read_bytes() == before
    monkeypatch.undo()
    read_checkpoint(save(model, path))  # space freed: the same call works


def test_a_held_outputs_leftovers_are_cleared_and_no_others(tmp_path):
    mine = [".a.nc.abcd_123.tmp", ".a.nc.zzzzzzzz.tmp"]
    others = [".a.nc.x.abcd_123.tmp",     # of output a.nc.x
              ".b.nc.abcd_123.tmp",       # of output b.nc
              ".a.nc.abc.tmp",            # not a temporary name
              "a.nc", ".b.nc.partial"]
    for name in mine + others:
        (tmp_path / name).write_text("x")
    (tmp_path / ".a.nc.partial").mkdir()
    (tmp_path / ".a.nc.partial" / "metrics.csv").write_text("x")
    assert [p.name for p in temporaries(tmp_path, "a.nc")] == mine
    gone = clear_leftovers(tmp_path / "a.nc", "partial")
    assert sorted(p.name for p in gone) == sorted(mine + [".a.nc.partial"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others)
