"""Evaluation windows from the checkpoint's split spec; rollouts scored without history."""

import numpy as np
import pytest
import torch
from torch import nn

from evaluate.metrics import rmse
from evaluate.rollout import (EvaluationError, build_windows, canonical_split,
                              evaluate_split, open_data)
from surrogate.forecast import Surrogate
from surrogate.symmetry import FieldLayout

from evaluate_helpers import HELDOUT, N_SIMS, T_IN, split_spec


class Persistence(nn.Module):
    """Predicts the last given frame: its error at step s is frame(t+s) - frame(t)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.config = {"name": "persistence", "T_in": T_IN,
                       "layout": FieldLayout().to_dict()}

    def forward(self, x):
        return x[:, -1] + 0 * self.dummy


@pytest.fixture
def persistence():
    return Surrogate(Persistence(), metadata={"splits": split_spec()})


def test_split_names():
    assert canonical_split("test-domain") == "test_domain"
    assert canonical_split("Test_Future") == "test_future"
    with pytest.raises(EvaluationError, match="unknown split"):
        canonical_split("test")


def test_windows_follow_the_recorded_spec(tiny_data):
    _, ds = tiny_data
    meta = {"splits": split_spec()}
    w = build_windows(meta, "test-domain", ds, T_IN, 4)
    assert set(w.sims) == set(HELDOUT) and sorted(set(w.starts)) == list(range(0, 8))
    assert len(w) == len(HELDOUT) * 8 and w.note == ""
    w = build_windows(meta, "test-future", ds, T_IN, 10)  # spec starts 10..15, 24 frames
    assert set(w.starts) == {10, 11} and "dropped" in w.note
    assert set(w.sims) == set(range(N_SIMS)) - set(HELDOUT)
    assert len(build_windows(meta, "test-domain", ds, T_IN, 4, stride=3)) == 2 * 3
    assert len(build_windows(meta, "test-domain", ds, T_IN, 4, max_windows=5)) == 5
    w = build_windows({}, "all", ds, T_IN, 4)
    assert len(set(w.sims)) == N_SIMS and list(np.unique(w.starts)) == [0, 4, 8, 12, 16]
    with pytest.raises(EvaluationError, match="no split spec"):
        build_windows({}, "test-domain", ds, T_IN, 4)
    with pytest.raises(EvaluationError, match="too few"):
        build_windows(meta, "test-domain", ds, T_IN, 40)
    with pytest.raises(EvaluationError, match="simulations"):
        build_windows({"splits": split_spec(n_sims=9)}, "valid", ds, T_IN, 2)


def test_rollout_scores_only_predicted_frames(tiny_data, persistence):
    path, _ = tiny_data
    ds = open_data(path)
    w = build_windows(persistence.metadata, "test-domain", ds, T_IN, 4)
    res = evaluate_split(persistence, ds, w, batch_size=5)
    assert res.per_step["rmse"].shape == (len(w), 4)
    arr = np.stack([ds[c].values for c in ("u", "v", "density")], axis=2)  # sim,t,C,y,x
    for i in (0, 7, len(w) - 1):
        s, t = int(w.sims[i]), int(w.starts[i])
        last = arr[s, t + T_IN - 1]  # last history frame
        target = arr[s, t + T_IN:t + T_IN + 4]  # the 4 frames after the history
        expect = rmse(np.broadcast_to(last, target.shape)[None], target[None])[0]
        assert res.per_step["rmse"][i] == pytest.approx(expect, rel=1e-5)
    assert (res.per_step["rmse"][:, 0] > 0).all()  # step 1 is not a history frame
    assert res.dt == 0.5 and res.summary["n_windows"] == len(w)
    assert res.examples["pred"].shape == (1, 4, 3, 16, 16)
