import re

import pytest
import torch

from train import DataError, fit
from train.data import open_data
from train.windows import WindowDataset

from train_fixtures import make_dataset, tiny_config


def test_shards_concatenate_and_lazy_matches_memory(tmp_path):
    a = make_dataset(tmp_path / "a.nc", n_sims=2, heldout=[1], seed=1)
    b = make_dataset(tmp_path / "b.nc", n_sims=3, heldout=[0], seed=2)
    mem = open_data([a, b], in_memory="yes")
    lazy = open_data([a, b], in_memory="no")
    assert mem.in_memory and not lazy.in_memory
    assert mem.n_sims == 5 and mem.sims_per_file == [2, 3]
    assert mem.heldout.tolist() == [False, True, True, False, False]
    assert mem.describe()["sim_coords"]["buoyancy"][0] == pytest.approx(0.1)
    windows = [(0, 0), (3, 7), (4, 20)]
    for dm, dl in zip(WindowDataset(mem, windows, 3, 2), WindowDataset(lazy, windows, 3, 2)):
        assert dm[0].shape == (3, 3, 16, 16) and dm[1].shape == (2, 3, 16, 16)
        torch.testing.assert_close(dm[0], dl[0])
        torch.testing.assert_close(dm[1], dl[1])
    lazy.close()


@pytest.mark.parametrize("kind, kw, message", [
    ("missing", dict(drop="density"), r"missing variable 'density' \(the schema needs"),
    ("short", dict(n_time=4), "too few"),
    ("nan", dict(nan_at=(2, 5)), "NaN values .*sim 2, time index 5"),
])
@pytest.mark.parametrize("in_memory", ["yes", "no"])
def test_guards_refuse_bad_data_before_training(tmp_path, kind, kw, message, in_memory):
    path = make_dataset(tmp_path / f"{kind}.nc", **kw)
    out = tmp_path / "run"
    with pytest.raises(DataError, match=message):
        fit(tiny_config(path, out, in_memory=in_memory))
    assert not (out / "last.pt").exists() and not (out / "metrics.jsonl").exists()


def test_missing_file_and_grid_mismatch(tmp_path):
    with pytest.raises(DataError, match="no such data file"):
        open_data([tmp_path / "nope.nc"])
    a = make_dataset(tmp_path / "a.nc", n=16)
    b = make_dataset(tmp_path / "b.nc", n=8)
    with pytest.raises(DataError, match="differ"):
        open_data([a, b])


def test_the_stated_minimum_of_frames_is_the_true_minimum(tmp_path):
    """The minimum the message states is the fewest frames that train: one fewer is
    refused with the same minimum, exactly that many trains (it used to say T_in + K
    while longer data were refused too, for an empty valid split)."""
    def attempt(n: int):
        path = make_dataset(tmp_path / f"t{n}.nc", n_time=n)
        return fit(tiny_config(path, tmp_path / f"run{n}", epochs=1))

    with pytest.raises(DataError, match=r"4 frames per simulation are too few; training "
                                        r"needs at least \d+ ") as info:
        attempt(4)
    need = int(re.search(r"needs at least (\d+)", str(info.value)).group(1))
    assert need > 2 + 2 + 2   # T_in + K + skip frames are not enough for the split ranges
    with pytest.raises(DataError, match=f"{need - 1} frames per simulation are too few; "
                                        f"training needs at least {need} "):
        attempt(need - 1)
    assert attempt(need).name == "best.pt"
