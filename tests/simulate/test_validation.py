"""Bounded, typed inputs for generation: one-line errors before anything is
simulated, and no parts folder left behind by a run that failed validation."""

import os
import stat

import pytest

import simulate
from simulate.cli import main
from simulate.generate import memory_estimate, plan_parts


def _err(capsys, args):
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("args,match", [
    (["--resolution", "20000"], "resolution must be at most 215"),
    (["--resolution", "100000"], "resolution must be at most 215"),
    (["--set", "base_buoyancy=up"], "base_buoyancy must be a number, got 'up'"),
    (["--set", "n_magnitudes=2.5"], "n_magnitudes must be an integer"),
    (["--threads", "0"], "threads must be a positive integer"),
    (["--workers", "0"], "workers must be a positive integer"),
    (["--batch-size", "0"], "batch_size must be a positive integer"),
    # 2000 plumes x 2501 frames at 200x200: far more memory than any test machine has
    (["--resolution", "200", "--set", "n_magnitudes=500", "--steps", "2500"],
     "GiB of memory"),
])
def test_bad_generate_arguments(tmp_path, capsys, args, match):
    out = tmp_path / "a.nc"
    err = _err(capsys, ["generate", "rotation", "-o", out, "--no-progress", *args])
    assert match in err
    assert list(tmp_path.iterdir()) == []  # no output, no parts folder


@pytest.mark.parametrize("toml,match", [
    ('[[sims]]\ninflow_x = 8\ninflow_y = 8\nbuoyancy = "up"\n', "buoyancy must be a list of 2"),
    ('[[sims]]\ninflow_x = "abc"\ninflow_y = 8\n', "inflow_x must be a number, got 'abc'"),
    ('[[sims]]\ninflow_x = 8\ninflow_y = 8\nobstacle = [1, 2]\n', "obstacle must be a list of 4"),
    ('seed = "x"\n[[sims]]\ninflow_x = 8\ninflow_y = 8\n', "seed must be an integer"),
    ('steps = "10"\n[[sims]]\ninflow_x = 8\ninflow_y = 8\n', "steps must be an integer"),
    ('sims = [1, 2]\n', "must be a table"),
    ('[solver]\nrel_tol = "small"\n[[sims]]\ninflow_x = 8\ninflow_y = 8\n',
     "solver: rel_tol must be a number"),
    ('preset = "rotation"\n[params]\nbase_buoyancy = "up"\n', "base_buoyancy must be a number"),
])
def test_typed_toml_mistakes(tmp_path, capsys, toml, match):
    spec = tmp_path / "spec.toml"
    spec.write_text("resolution = 16\n" + toml if not toml.startswith("preset") else toml)
    err = _err(capsys, ["generate", spec, "-o", tmp_path / "a.nc", "--no-progress"])
    assert match in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


def test_memory_estimate_scales_with_the_run():
    small = simulate.preset("rotation", resolution=32, n_magnitudes=2, steps=20)
    big = simulate.preset("rotation", resolution=64, n_magnitudes=2, steps=20)
    a, b = (memory_estimate(s, plan_parts(s, 16)) for s in (small, big))
    assert 0 < a < b
    # the stored frames alone: 8 sims x 21 frames x 3 fields x 64^2 x 4 bytes, twice
    assert b >= 2 * 8 * 21 * 3 * 64 ** 2 * 4


def test_failed_first_part_leaves_no_parts_folder(tmp_path, monkeypatch):
    """A run that dies before any part is finished leaves nothing that blocks a rerun."""
    import importlib
    G = importlib.import_module("simulate.generate")

    def boom(*a, **k):
        raise MemoryError("simulated out-of-memory")
    monkeypatch.setattr(G, "_run_part", boom)
    spec = simulate.preset("rotation", resolution=16, n_magnitudes=1, steps=2)
    out = tmp_path / "a.nc"
    with pytest.raises(MemoryError):
        simulate.generate(spec, out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_dataset_mode_follows_umask(tmp_path):
    spec = simulate.preset("rotation", resolution=16, n_magnitudes=1, steps=2)
    old = os.umask(0o022)
    try:
        simulate.generate(spec, tmp_path / "a.nc", progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.nc").stat().st_mode) == 0o644
