from pathlib import Path

import pytest
import torch

from train_fixtures import make_dataset


@pytest.fixture(scope="session")
def tiny_nc(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "tiny.nc")


@pytest.fixture(autouse=True)
def _few_threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
