"""One reader and one schema check for every command that reads dataset files
(``simulate info``, train, evaluate): a file one of them refuses, all refuse, with the
same one line, exit code 2 and no traceback."""

from pathlib import Path

import numpy as np
import pytest

import simulate
from simulate.dataset import build_dataset, write_dataset

N_TIME = 24


def _dataset(transpose: bool = False):
    spec = simulate.preset("rotation", resolution=32, n_magnitudes=1, steps=N_TIME - 1)
    rng = np.random.default_rng(0)   # random values: zlib cannot shrink the data region
    fields = {k: rng.random((4, N_TIME, 32, 32)).astype(np.float32)
              for k in ("u", "v", "density")}
    causes = {k: rng.random((4, 32, 32)) for k in simulate.CAUSE_VARS}
    ds = build_dataset(spec, [0, 1, 2, 3], fields, causes)
    return ds.transpose("sim", "time", "x", "y") if transpose else ds


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from surrogate import build_model
    from surrogate.checkpoint import save
    return save(build_model("unet", T_in=2, hidden=2, depth=2, norm_groups=1),
                tmp_path_factory.mktemp("ck") / "m.pt")


def _errors(path: Path, checkpoint: Path, tmp_path: Path, capfd) -> dict[str, str]:
    """The stderr line of each command on ``path`` after ``PROG: error: `` (capfd: what
    the HDF5 library might print itself counts too)."""
    from evaluate.cli import main as evaluate
    from simulate.cli import main as simulate_cli
    from train.cli import main as train

    runs = {
        "info": lambda: simulate_cli(["info", str(path)]),
        "train": lambda: train(["--data", str(path), "--out", str(tmp_path / "run"),
                                "--model", "unet", "--hidden", "4", "--depth", "2",
                                "--model-opt", "norm_groups=1", "--T-in", "2", "--K", "2",
                                "--epochs", "1", "--no-progress", "--device", "cpu"]),
        "train lazy": lambda: train(["--data", str(path), "--out", str(tmp_path / "run"),
                                     "--model", "unet", "--T-in", "2", "--K", "2",
                                     "--in-memory", "no", "--no-progress", "--device",
                                     "cpu"]),
        "evaluate": lambda: evaluate(["-c", str(checkpoint), "-d", str(path), "-s", "all",
                                      "--steps", "2", "-o", str(tmp_path / "rep"), "-q"]),
    }
    out = {}
    for name, run in runs.items():
        rc = run()
        captured = capfd.readouterr()
        err = captured.err.strip()
        assert rc == 2, (name, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (name, err)
        assert captured.out == "", (name, captured.out)
        out[name] = err.split(": error: ", 1)[1]
    assert not (tmp_path / "run").exists() and not (tmp_path / "rep").exists()
    return out


def test_a_damaged_data_block_is_corrupt_or_unreadable_everywhere(checkpoint, tmp_path,
                                                                   capfd):
    path = write_dataset(_dataset(), tmp_path / "damaged.nc")
    size = path.stat().st_size
    with open(path, "r+b") as f:   # the middle of the file: compressed field chunks
        f.seek(size // 2)
        f.write(b"\xff" * 4096)
    simulate.open_dataset(path).close()  # the header is intact: only reading the data tells
    errors = _errors(path, checkpoint, tmp_path, capfd)
    line = errors["info"]
    assert line.startswith(f"{path}: corrupt or unreadable data in variable "), line
    assert set(errors.values()) == {line}, errors  # `info` no longer calls it valid


def test_transposed_fields_are_refused_by_every_reader(checkpoint, tmp_path, capfd):
    path = write_dataset(_dataset(transpose=True), tmp_path / "xy.nc")
    errors = _errors(path, checkpoint, tmp_path, capfd)
    assert set(errors.values()) == {
        f"{path}: variable 'u' has dims ('sim', 'time', 'x', 'y'), expected "
        "('sim', 'time', 'y', 'x')"}, errors


def test_renamed_fields_are_refused_by_every_reader(checkpoint, tmp_path, capfd):
    """A custom layout naming other variables does not make train accept a file the
    schema refuses: u, v, density are required by every reader."""
    from train.cli import main as train

    path = write_dataset(_dataset().rename(u="vx", v="vy", density="rho"),
                         tmp_path / "renamed.nc")
    errors = _errors(path, checkpoint, tmp_path, capfd)
    line = f"{path}: missing variable 'u' (the schema needs u, v, density)"
    assert set(errors.values()) == {line}, errors
    layout = '{"channels": ["vx", "vy", "rho"], "vectors": [["vx", "vy"]]}'
    assert train(["--data", str(path), "--out", str(tmp_path / "run"), "--T-in", "2",
                  "--K", "2", "--model-opt", f"layout={layout}", "--no-progress",
                  "--device", "cpu"]) == 2
    assert capfd.readouterr().err.strip().endswith(line)


def test_a_folder_is_named_a_directory_by_every_reader(checkpoint, tmp_path, capfd):
    folder = tmp_path / "data.nc"
    folder.mkdir()
    errors = _errors(folder, checkpoint, tmp_path, capfd)
    assert set(errors.values()) == {f"{folder}: is a directory, not a NetCDF data file"}
