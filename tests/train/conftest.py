from pathlib import Path

import pytest

from train_fixtures import make_dataset


@pytest.fixture(scope="session")
def tiny_nc(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "tiny.nc")
