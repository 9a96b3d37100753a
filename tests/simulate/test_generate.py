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
