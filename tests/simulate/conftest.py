"""Session-scoped small datasets shared by the simulate tests (real PhiFlow runs)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import simulate  # noqa: E402

RES = 32


def _make(tmp_path_factory, name, resolution=RES, **params):
    spec = simulate.preset(name, resolution=resolution, **params)
    out = tmp_path_factory.mktemp(name) / f"{name}.nc"
    summary = simulate.generate(spec, out, batch_size=16, progress=False)
    assert summary["complete"]
    return spec, out


@pytest.fixture(scope="session")
def rotation_data(tmp_path_factory):
    """rotation: 2 magnitudes x 4 walls, 30 steps, every 2nd stored."""
    spec, path = _make(tmp_path_factory, "rotation", n_magnitudes=2, steps=30, save_every=2)
    return spec, path, simulate.open_dataset(path, load=True)


@pytest.fixture(scope="session")
def symmetric_data(tmp_path_factory):
    spec, path = _make(tmp_path_factory, "symmetric", n_magnitudes=2, steps=30, save_every=2)
    return spec, path, simulate.open_dataset(path, load=True)


@pytest.fixture(scope="session")
def sweep_data(tmp_path_factory):
    spec, path = _make(tmp_path_factory, "breaking_sweep", levels=[0.0, 0.5, 1.0], n_magnitudes=1,
                       steps=30, save_every=2)
    return spec, path, simulate.open_dataset(path, load=True)


@pytest.fixture(scope="session")
def translation_data(tmp_path_factory):
    spec, path = _make(tmp_path_factory, "translation", nx=2, ny=2, steps=20, save_every=2)
    return spec, path, simulate.open_dataset(path, load=True)


@pytest.fixture(scope="session")
def boundary_data(tmp_path_factory):
    spec, path = _make(tmp_path_factory, "boundary", n_inflows=2, n_magnitudes=2, steps=20, save_every=2)
    return spec, path, simulate.open_dataset(path, load=True)


@pytest.fixture(scope="session")
def by_settling_speed(tmp_path_factory):
    """A function: preset ``name`` with ``params`` written once per settling speed of
    ``speeds``, returning ``{speed: dataset}`` (loaded)."""
    def make(name, speeds, **params):
        return {v: simulate.open_dataset(_make(tmp_path_factory, name, settling_speed=v,
                                               **params)[1], load=True) for v in speeds}
    return make
