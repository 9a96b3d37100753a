"""Parts, resume, shards and merge."""

import sys

import numpy as np
import pytest
import xarray as xr

import simulate
import simulate.dataset as sd
from simulate.generate import plan_parts

gen_module = sys.modules["simulate.generate"]     # the module (simulate.generate is the function)


def _spec():
    return simulate.preset("rotation", resolution=16, n_magnitudes=1, steps=8, save_every=2)


def _same(a: xr.Dataset, b: xr.Dataset):
    for name in ("u", "v", "density", "inflow_mask", "buoyancy_x"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    skip = {"created", "shard"}
    assert {k: v for k, v in a.attrs.items() if k not in skip} == {k: v for k, v in b.attrs.items() if k not in skip}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "full.nc"
    s = simulate.generate(_spec(), out, batch_size=2, progress=False)
    assert s["complete"] and s["parts_computed"] == 2
    assert not out.with_name(out.name + ".parts").exists()
    return simulate.open_dataset(out, load=True)


def test_plan_parts():
    spec = simulate.preset("rotation", resolution=16, n_magnitudes=3, steps=2)
    assert plan_parts(spec, 5) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert plan_parts(spec, 16, "1/3") == [[4, 5, 6, 7]]
    with pytest.raises(simulate.GenerateError, match="empty"):
        plan_parts(spec, 4, "12/13")


def test_resume_after_a_crash_gives_the_same_file(tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "r.nc"
    real = sd.write_dataset
    calls = []

    def flaky(ds, path):                # the 2nd part dies while being written
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(ds, path)

    monkeypatch.setattr(gen_module, "write_dataset", flaky)
    with pytest.raises(KeyboardInterrupt):
        simulate.generate(_spec(), out, batch_size=2, progress=False)
    monkeypatch.setattr(gen_module, "write_dataset", real)
    parts = out.with_name(out.name + ".parts")
    assert not out.exists()
    assert sorted(p.name for p in parts.iterdir()) == ["manifest.json", "part-00000.nc"]   # no partial files
    with pytest.raises(simulate.GenerateError, match="--resume"):
        simulate.generate(_spec(), out, batch_size=2, progress=False)
    s = simulate.generate(_spec(), out, batch_size=2, resume=True, progress=False)
    assert s["parts_reused"] == 1 and s["parts_computed"] == 1 and s["complete"]
    _same(simulate.open_dataset(out, load=True), uninterrupted)
    again = simulate.generate(_spec(), out, batch_size=2, resume=True, progress=False)
    assert again["already_complete"]


def test_max_parts_then_resume(tmp_path, uninterrupted):
    out = tmp_path / "m.nc"
    s = simulate.generate(_spec(), out, batch_size=2, max_parts=0, progress=False)
    assert not s["complete"] and s["parts_remaining"] == 2 and not out.exists()
    s = simulate.generate(_spec(), out, batch_size=4, resume=True, progress=False)   # batching kept from the manifest
    assert s["complete"] and s["parts_computed"] == 2
    _same(simulate.open_dataset(out, load=True), uninterrupted)


def test_shards_and_merge(tmp_path, uninterrupted):
    paths = []
    for i in range(2):
        p = tmp_path / f"shard{i}.nc"
        simulate.generate(_spec(), p, batch_size=2, shard=f"{i}/2", progress=False)
        ds = simulate.open_dataset(p)
        assert list(ds.sim.values) == [2 * i, 2 * i + 1] and ds.attrs["shard"] == f"{i}/2"
        ds.close()
        paths.append(p)
    with pytest.raises(simulate.DatasetError, match="in none of the files"):
        simulate.merge(paths[:1], tmp_path / "part.nc")
    merged = simulate.merge(paths[::-1], tmp_path / "all.nc")
    _same(simulate.open_dataset(merged, load=True), uninterrupted)


def test_output_exists_needs_overwrite(tmp_path):
    out = tmp_path / "x.nc"
    out.write_text("old")
    with pytest.raises(simulate.GenerateError, match="exists"):
        simulate.generate(_spec(), out, progress=False)
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(simulate.GenerateError, match="is a file"):
        simulate.generate(_spec(), a_file / "sub" / "x.nc", progress=False)
    fresh = tmp_path / "new" / "deeper" / "x.nc"   # missing folders are created
    simulate.generate(_spec(), fresh, progress=False)
    assert simulate.open_dataset(fresh).sizes["sim"] == len(_spec().sims)


def test_resume_after_kill_9_in_another_process_is_bit_identical(tmp_path, uninterrupted):
    """A real ``kill -9`` once the first part is on disk, then ``--resume`` in a fresh
    process: the parts computed after the restart equal those of the uninterrupted run
    (a jit trace shared between parts used to make them differ by ~1e-5)."""
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    out = tmp_path / "k.nc"
    cmd = [sys.executable, "-m", "simulate", "generate", "rotation", "--resolution", "16",
           "--set", "n_magnitudes=1", "--steps", "8", "--save-every", "2",
           "--batch-size", "2", "--no-progress", "-o", str(out)]
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = out.with_name(out.name + ".parts") / "part-00000.nc"
    deadline = time.time() + 240
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists() and not out.exists(), "the run finished before it could be killed"
    r = subprocess.run(cmd + ["--resume"], env=env, cwd=root, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    _same(simulate.open_dataset(out, load=True), uninterrupted)


_CLI = ["generate", "rotation", "--resolution", "16", "--set", "n_magnitudes=1", "--steps", "8",
        "--save-every", "2", "--batch-size", "2", "--no-progress"]


def test_an_output_has_one_owner(tmp_path, capsys, hold_elsewhere):
    """While another process owns -o, generate (even --resume / --overwrite) is refused
    with one line and exit 2 and touches nothing; a killed owner leaves no stale lock."""
    from simulate.cli import main

    out = tmp_path / "x.nc"
    holder = hold_elsewhere(out)
    for flag in ("--resume", "--overwrite"):
        assert main(_CLI + ["-o", str(out), flag]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(out) in err and "another process" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".x.nc.lock"]
    holder.kill()
    holder.wait()
    s = simulate.generate(_spec(), out, batch_size=2, max_parts=0, progress=False)
    assert s["parts_remaining"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nc.parts"]  # lock released


def test_kill_9_during_overwrite_then_resume(tmp_path, capsys, uninterrupted):
    """A real ``kill -9`` of ``--overwrite`` once its first part is on disk: the old
    output is intact; ``--resume`` continues the overwrite with the finished part (here
    stopped at once by ``--max-parts 0``), and so does ``--resume --overwrite``, which
    finishes it: the file of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    from simulate.cli import main

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "k.nc"
    out.write_text("old")
    cmd = [sys.executable, "-m", "simulate", *_CLI, "-o", str(out), "--overwrite"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1"))
    first = out.with_name(out.name + ".parts") / "part-00000.nc"
    deadline = time.time() + 240
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists() and out.read_text() == "old", "the run ended before the kill"
    assert main(_CLI + ["-o", str(out), "--resume", "--max-parts", "0"]) == 0, \
        capsys.readouterr().err
    assert "0 computed, 1 reused, 1 remaining" in capsys.readouterr().out
    assert out.read_text() == "old"
    assert main(_CLI + ["-o", str(out), "--resume", "--overwrite"]) == 0, \
        capsys.readouterr().err
    assert "1 computed, 1 reused, 0 remaining" in capsys.readouterr().out
    _same(simulate.open_dataset(out, load=True), uninterrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.nc"]  # no parts, no lock


def _children(pid: int) -> list[int]:
    """Pids of the processes whose parent is ``pid`` (from /proc/*/stat)."""
    from pathlib import Path

    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid:
                kids.append(int(d.name))
    return kids


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for a reaper does not)."""
    from pathlib import Path

    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_generate_with_workers_orphans_no_process(tmp_path):
    """A real ``kill -9`` of ``generate --workers 2`` while its workers simulate: every
    child (workers, the progress queue's manager) is gone within seconds, instead of
    simulating on for nobody."""
    import os
    import re
    import signal
    import subprocess
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out, log = tmp_path / "w.nc", tmp_path / "stderr.txt"
    cmd = [sys.executable, "-m", "simulate", "generate", "rotation", "--resolution", "32",
           "--set", "n_magnitudes=1", "--steps", "300", "--save-every", "10",
           "--batch-size", "2", "--workers", "2", "-o", str(out)]   # 2 parts, ~15 s each
    kids: list[int] = []
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=err,
                                env=dict(os.environ, PYTHONPATH=str(root),
                                         OMP_NUM_THREADS="1"))
    try:
        deadline = time.time() + 240
        while proc.poll() is None and time.time() < deadline:  # the workers simulate
            steps = re.findall(r"\| *(\d+)/\d+ \[", log.read_text(errors="replace"))
            if steps and int(steps[-1]) > 0:
                break
            time.sleep(0.1)
        kids = _children(proc.pid)
        assert proc.poll() is None and not out.exists(), "the run ended before the kill"
        assert len(kids) >= 3, f"expected 2 workers and a manager, found {kids}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 5
        while any(map(_alive, kids)) and time.time() < deadline:
            time.sleep(0.05)
        assert not [k for k in kids if _alive(k)], "children outlived the killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for k in kids:  # the orphans of a failing run
            if _alive(k):
                os.kill(k, signal.SIGKILL)


@pytest.mark.parametrize("error,failing", [
    (OSError(28, "No space left on device"), "part"), (RuntimeError("NetCDF: HDF error"), "part"),
    (RuntimeError("NetCDF: HDF error"), "join")])
def test_a_full_disk_is_one_line_leaves_no_partial_file_and_resume_finishes(
        tmp_path, monkeypatch, capsys, uninterrupted, error, failing):
    """The disk fills up while a part or the final file is written: one line naming the
    file, exit 1, no temporary file left; after freeing space --resume finishes (a
    partial part is never reused)."""
    from pathlib import Path

    import surrogate.diskfull as dfull
    from simulate.cli import main

    out = tmp_path / "k.nc"
    target = ".part-00001.nc." if failing == "part" else ".k.nc."
    real = xr.Dataset.to_netcdf

    def full(self, path=None, *a, **k):
        if Path(path).name.startswith(target):
            Path(path).write_bytes(b"\0" * 4096)  # what reached the disk
            raise error
        return real(self, path, *a, **k)
    monkeypatch.setattr(xr.Dataset, "to_netcdf", full)
    monkeypatch.setattr(dfull, "free_bytes", lambda p: 0)
    assert main(_CLI + ["-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    name = out.name + (".parts/part-00001.nc" if failing == "part" else "")
    assert len(err) == 1 and f"cannot write {tmp_path / name}: no space left on device" \
        in err[0] and "--resume" in err[0], err
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["k.nc.parts", "k.nc.parts/manifest.json", "k.nc.parts/part-00000.nc"] \
        + (["k.nc.parts/part-00001.nc"] if failing == "join" else [])
    monkeypatch.undo()
    assert main(_CLI + ["-o", str(out), "--resume"]) == 0, capsys.readouterr().err
    _same(simulate.open_dataset(out, load=True), uninterrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.nc"]


def test_a_run_clears_the_temporary_files_killed_runs_of_its_output_left(tmp_path, capsys):
    """Temporaries of a kill during the final join (beside -o) or during a part or
    manifest write (in the parts folder) go at the next run of that -o; other outputs'
    files stay."""
    from simulate.cli import main

    out = tmp_path / "k.nc"
    assert main(_CLI + ["-o", str(out), "--max-parts", "1"]) == 0
    parts = tmp_path / "k.nc.parts"
    mine = [tmp_path / ".k.nc.a1b2c3d4.tmp", parts / ".part-00001.nc.zz_9abcd.tmp",
            parts / "manifest.tmp"]
    others = [tmp_path / ".kk.nc.a1b2c3d4.tmp", tmp_path / ".k.nc.x.a1b2c3d4.tmp",
              tmp_path / "notes.tmp"]
    for p in mine + others:
        p.write_bytes(b"\0" * 100)
    assert main(_CLI + ["-o", str(out), "--resume", "--max-parts", "0"]) == 0
    assert "0 computed, 1 reused, 1 remaining" in capsys.readouterr().out
    assert not [p for p in mine if p.exists()] and all(p.exists() for p in others)
    assert sorted(p.name for p in parts.iterdir()) == ["manifest.json", "part-00000.nc"]
