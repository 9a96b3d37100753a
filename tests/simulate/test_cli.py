"""The command line, run as a real subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "simulate", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd or ROOT, timeout=300)


def _bad_cases(tmp_path):
    exists = tmp_path / "exists.nc"
    exists.write_text("x")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    return [
        (["generate", "spiral", "-o", tmp_path / "a.nc"], "unknown scenario"),
        (["generate", "rotation", "--set", "wall_distance=-3", "-o", tmp_path / "a.nc"], "outside the box"),
        (["generate", "rotation", "--resolution", "0", "-o", tmp_path / "a.nc"], "resolution"),
        (["generate", "rotation", "--steps", "-5", "-o", tmp_path / "a.nc"], "steps"),
        (["generate", "rotation", "--save-every", "0", "-o", tmp_path / "a.nc"], "save_every"),
        (["generate", "rotation", "-o", exists], "exists"),
        (["generate", "rotation", "-o", a_file / "a.nc"], "not a folder"),
        (["generate", "rotation", "-o", a_file / "sub" / "a.nc"], "is a file"),
        (["generate", "rotation", "--shard", "3/2", "-o", tmp_path / "a.nc"], "shard"),
        (["generate", "rotation", "--bogus", "-o", tmp_path / "a.nc"], "unrecognized"),
        (["info", tmp_path / "missing.nc"], "no such data file"),
        (["frobnicate"], "invalid choice"),
    ] + ([(["generate", "rotation", "-o", "/proc/a.nc"], "/proc is not writable")] if os.geteuid() == 0 else [])


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    for args, match in _bad_cases(tmp_path):
        r = run(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, (args, r.stderr)
        assert len(lines) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
        assert match in lines[0], (args, lines[0])


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    r = run("generate", "rotation", "-o", d / "a.nc")
    assert r.returncode == 2 and "not writable" in r.stderr


def test_generate_info_merge_and_spec(tmp_path):
    common = ["--resolution", "16", "--steps", "4", "--set", "n_magnitudes=1", "--no-progress"]
    r = run("generate", "symmetric", *common, "--shard", "0/2", "-o", tmp_path / "s0.nc")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "frames/s" in r.stdout
    r = run("generate", "symmetric", *common, "--shard", "1/2", "-o", tmp_path / "s1.nc")
    assert r.returncode == 0, r.stderr
    r = run("merge", tmp_path / "s0.nc", tmp_path / "s1.nc", "-o", tmp_path / "all.nc")
    assert r.returncode == 0 and "4 simulations" in r.stdout, r.stderr
    r = run("info", tmp_path / "all.nc", "--check-nans")
    assert r.returncode == 0 and "scenario symmetric" in r.stdout
    r = run("spec", "breaking_sweep", "--set", "levels=0,1", "--resolution", "32")
    assert r.returncode == 0 and "[[sims]]" in r.stdout
    (tmp_path / "s.toml").write_text(r.stdout)
    r = run("list")
    assert r.returncode == 0 and "breaking_sweep" in r.stdout


def test_generate_with_late_start_and_info_says_so(tmp_path):
    r = run("generate", "rotation", "--resolution", "16", "--steps", "2", "--set", "n_magnitudes=2",
            "--set", "late_start=2", "--no-progress", "-o", tmp_path / "late.nc")
    assert r.returncode == 0, r.stderr
    r = run("info", tmp_path / "late.nc")
    assert r.returncode == 0 and "recorded after a warm-up of 2 steps" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("device, message", [
    ("gpu", "unknown device 'gpu'; accepted: auto, cpu, cuda or cuda:N"),
    pytest.param("cuda", "cuda requested but torch sees no CUDA device",
                 marks=pytest.mark.skipif(__import__("torch").cuda.is_available(),
                                          reason="has CUDA")),
])
def test_device_names_are_the_shared_set(tmp_path, capsys, device, message):
    from simulate.cli import main
    assert main(["generate", "rotation", "--resolution", "8", "--steps", "2", "--device",
                 device, "-o", str(tmp_path / "a.nc"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"relaxflow-simulate: error: {message}")
    assert not list(tmp_path.iterdir())


def test_merge_refusals_name_the_flags(tmp_path, capsys):
    """The library names its keyword (allow_partial=True), the command line its flag
    (--allow-partial): the CLI used to say 'pass allow_partial'."""
    import numpy as np

    import simulate
    from simulate.cli import main
    from simulate.dataset import build_dataset, write_dataset

    spec = simulate.preset("rotation", resolution=8, n_magnitudes=1, steps=2)  # 4 sims
    rng = np.random.default_rng(0)
    fields = {k: rng.random((2, 3, 8, 8)).astype(np.float32) for k in ("u", "v", "density")}
    causes = {k: rng.random((2, 8, 8)) for k in simulate.CAUSE_VARS}
    shard = write_dataset(build_dataset(spec, [0, 1], fields, causes), tmp_path / "s0.nc")
    out = tmp_path / "all.nc"
    with pytest.raises(simulate.DatasetError, match=r"\[2, 3\] of 4 .*\(pass allow_partial=True"):
        simulate.merge([shard], out)
    assert main(["merge", str(shard), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("are in none of the files (pass --allow-partial to merge anyway)"), err
    assert main(["merge", str(shard), "-o", str(out), "--allow-partial"]) == 0
    capsys.readouterr()
    assert main(["merge", str(shard), "-o", str(out), "--allow-partial"]) == 2
    assert capsys.readouterr().err.strip() == (f"relaxflow-simulate: error: {out}: output "
                                               "exists (pass --overwrite to replace it)")
    with pytest.raises(simulate.DatasetError, match="pass overwrite=True"):
        simulate.merge([shard], out, allow_partial=True)


def test_merge_has_one_owner_and_clears_a_killed_merge_s_temporaries(tmp_path, capsys,
                                                                    hold_elsewhere):
    """A merge into an output another process holds is one line, exit 2, and leaves the
    output alone; the next merge removes the temporary a killed merge left."""
    import numpy as np

    import simulate
    from simulate.cli import main
    from simulate.dataset import build_dataset, write_dataset

    spec = simulate.preset("rotation", resolution=8, n_magnitudes=1, steps=2)  # 4 sims
    rng = np.random.default_rng(0)
    fields = {k: rng.random((4, 3, 8, 8)).astype(np.float32) for k in ("u", "v", "density")}
    causes = {k: rng.random((4, 8, 8)) for k in simulate.CAUSE_VARS}
    shard = write_dataset(build_dataset(spec, [0, 1, 2, 3], fields, causes), tmp_path / "s.nc")
    out = tmp_path / "all.nc"
    holder = hold_elsewhere(out)
    assert main(["merge", str(shard), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "in use" in err and not out.exists(), err
    holder.kill()
    holder.wait()
    stale = tmp_path / ".all.nc.a1b2c3d4.tmp"
    stale.write_bytes(b"\0" * 100)
    assert main(["merge", str(shard), "-o", str(out)]) == 0
    assert out.is_file() and not stale.exists()
