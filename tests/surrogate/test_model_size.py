"""A model config that asks for more memory than the machine has is refused from the
config alone, with one line, before anything is allocated: building, loading a crafted
checkpoint (valid digest, ``hidden = 10**6``); evaluate's test is in tests/evaluate."""

import json
import time

import pytest
import torch

import surrogate
from surrogate import build_model
from surrogate.checkpoint import CheckpointError, _digest, save
from surrogate.model_size import PROBE_HIDDEN, check_width, tensor_bytes
from surrogate.normalization import Normalization
from surrogate.symmetry import FieldLayout


@pytest.mark.parametrize("name", ["unet", "gconv_unet", "relaxed_gconv_unet"])
def test_the_bound_is_an_upper_bound_and_not_loose(name):
    h = 2 * PROBE_HIDDEN
    real = tensor_bytes(build_model(name, hidden=h, depth=2))
    bound = tensor_bytes(build_model(name, hidden=PROBE_HIDDEN, depth=2)) * 4
    assert real <= bound < 1.3 * real


def test_a_huge_width_is_refused_fast_naming_the_size():
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"hidden=1000000 needs up to .* PB .* memory "
                                         "available"):
        build_model("unet", hidden=10**6)
    assert time.perf_counter() - t < 30
    built = []
    check_width(lambda h: built.append(h) or torch.nn.Linear(1, 1), 16, "m")
    assert built == []                       # a narrow model is not probed


def test_a_crafted_checkpoint_with_a_huge_width_is_one_line(tmp_path):
    model = build_model("unet", T_in=2, hidden=4, depth=2)
    path = save(model, tmp_path / "best.pt", metadata={"T_in": 2},
                normalization=Normalization(FieldLayout(), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)))
    raw = torch.load(path, weights_only=True)
    cfg = json.loads(raw["model_config"])
    cfg["hidden"] = 10**6
    raw["model_config"] = json.dumps(cfg, sort_keys=True)
    raw["digest"] = _digest(raw)
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="hidden=1000000 needs up to") as e:
        surrogate.load(path)
    assert "\n" not in str(e.value)
