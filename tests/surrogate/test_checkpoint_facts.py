"""A checkpoint stores the model's name and ``T_in`` once, in its model config; the
training metadata's copies are derived on read, refused on save when they disagree, and
an older file that stored them still loads (and is refused if its copies disagree)."""

import json
from pathlib import Path

import pytest
import torch

from surrogate import build_model
from surrogate.checkpoint import CheckpointError, _digest, read_checkpoint, save
from surrogate.checkpoint_facts import COPIES
from surrogate.records import TRAINING_KIND

DATA = Path(__file__).resolve().parent / "data"


def _model():
    torch.manual_seed(0)
    return build_model("unet", T_in=2, hidden=4, depth=2)


def _training_meta(model: str = "unet", T_in: int = 2) -> dict:
    splits = {s: {"sims": [0], "start": 0, "stop": 5, "horizon": 1}
              for s in ("train", "valid", "test_future", "test_domain")}
    return {"kind": TRAINING_KIND, "model": model, "T_in": T_in, "K": 1,
            "splits": {**splits, "T_in": T_in, "n_time": 8, "n_sims": 1},
            "train_config": {"model": model, "T_in": T_in, "lr": 1e-3}}


def _get(meta: dict, path: tuple[str, ...]):
    for key in path:
        meta = meta[key]
    return meta


def _stored_metadata(path) -> dict:
    return json.loads(torch.load(path, weights_only=True)["metadata"])


def test_the_file_holds_name_and_T_in_once_and_readers_see_every_copy(tmp_path):
    path = save(_model(), tmp_path / "a.pt", metadata=_training_meta())
    stored = _stored_metadata(path)
    for p, _ in COPIES:
        with pytest.raises(KeyError):
            _get(stored, p)
    raw = torch.load(path, weights_only=True)
    assert json.loads(raw["model_config"])["T_in"] == 2
    meta = read_checkpoint(path)["metadata"]
    assert [_get(meta, p) for p, _ in COPIES] == ["unet", 2, 2, "unet", 2]
    assert meta["train_config"]["lr"] == 1e-3 and meta["K"] == 1


@pytest.mark.parametrize("path,value", [(("T_in",), 3), (("model",), "gconv_unet"),
                                        (("splits", "T_in"), 4),
                                        (("train_config", "T_in"), 5)])
def test_saving_metadata_that_contradicts_the_model_is_refused(tmp_path, path, value):
    meta = _training_meta()
    node = meta
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValueError, match="contradicts the model config") as e:
        save(_model(), tmp_path / "bad.pt", metadata=meta)
    assert "\n" not in str(e.value) and ".".join(path) in str(e.value)
    assert not (tmp_path / "bad.pt").exists()


def test_metadata_of_another_kind_is_kept_as_given(tmp_path):
    meta = {"model": "mine", "T_in": 99, "note": "x"}
    path = save(_model(), tmp_path / "own.pt", metadata=meta)
    assert read_checkpoint(path)["metadata"] == meta


def test_an_older_file_with_the_copies_loads_with_them():
    ckpt = read_checkpoint(DATA / "old_unet.pt")
    stored = _stored_metadata(DATA / "old_unet.pt")
    assert stored["T_in"] == stored["splits"]["T_in"] == 3   # written as copies then
    assert ckpt["metadata"]["T_in"] == ckpt["model_config"]["T_in"] == 3
    assert ckpt["metadata"]["model"] == ckpt["model_config"]["name"] == "unet"


def test_an_older_file_whose_copies_disagree_is_refused(tmp_path):
    raw = torch.load(DATA / "old_unet.pt", weights_only=True)
    meta = json.loads(raw["metadata"])
    meta["splits"]["T_in"] = 7
    raw["metadata"] = json.dumps(meta, sort_keys=True)
    raw["digest"] = _digest(raw)
    torch.save(raw, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=r"odd\.pt: metadata splits\.T_in=7 "
                                              r"contradicts the model config's T_in=3"):
        read_checkpoint(tmp_path / "odd.pt")
