import json

import pytest

from train.config import SplitConfig
from train.splits import (PAPER_FRAMES, SplitError, SplitSpec, default_heldout,
                          resolve_splits)


def test_paper_ranges_for_310_frames():
    spec = resolve_splits(SplitConfig(), n_time=310, n_sims=35, T_in=10, K=6, valid_steps=6,
                          heldout_coord=[i >= 25 for i in range(35)])
    assert spec.preset == "paper"
    assert (spec.train.start, spec.train.stop) == (2, 162)       # starts 0..159 after skip 2
    assert (spec.valid.start, spec.valid.stop) == (162, 202)
    assert (spec.test_future.start, spec.test_future.stop) == (202, 252)
    assert (spec.test_domain.start, spec.test_domain.stop) == (2, 102)
    assert spec.test_future.horizon == 20
    assert spec.train.sims == tuple(range(25)) and spec.test_domain.sims == tuple(range(25, 35))
    assert PAPER_FRAMES["train"] == (0, 160)


def test_fractions_any_length_and_json_roundtrip():
    spec = resolve_splits(SplitConfig(), n_time=30, n_sims=5, T_in=2, K=2, valid_steps=2)
    d = spec.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert SplitSpec.from_dict(d) == spec
    assert spec.preset == "custom"
    # ordered, non-empty, every window fits the data
    assert spec.train.start < spec.valid.start < spec.test_future.start
    for name in ("train", "valid", "test_future", "test_domain"):
        r = spec[name]
        assert len(r) > 0, name
        assert r.starts[-1] + 2 + r.horizon <= 30
    assert set(spec.test_domain.sims).isdisjoint(spec.train.sims)
    assert default_heldout(5, 0.3) == [2]            # interior, evenly spread
    assert d["train"]["num_windows"] == len(spec.train)


def test_heldout_choices_and_errors():
    kw = dict(n_time=40, n_sims=6, T_in=3, K=2, valid_steps=2)
    assert resolve_splits(SplitConfig(heldout=[0, 5]), **kw).test_domain.sims == (0, 5)
    none = resolve_splits(SplitConfig(heldout="none"), **kw)
    assert none.test_domain.sims == () and len(none.test_domain) == 0
    with pytest.raises(SplitError, match="out of range"):
        resolve_splits(SplitConfig(heldout=[9]), **kw)
    with pytest.raises(SplitError, match="every simulation is held out"):
        resolve_splits(SplitConfig(), heldout_coord=[True] * 6, **kw)
    with pytest.raises(SplitError, match="valid split is empty"):
        resolve_splits(SplitConfig(valid=(0.99, 1.0)), **kw)
    with pytest.raises(SplitError, match="too few"):
        resolve_splits(SplitConfig(), n_time=6, n_sims=2, T_in=3, K=2, valid_steps=2)
