"""Evaluation of models with symmetry-breaking inputs: cause fields from the data."""

import numpy as np
import pytest
import torch

import evaluate
import surrogate
from evaluate.equivariance import model_equivariance_error
from evaluate.rollout import EvaluationError, build_windows, evaluate_split, load_aux, open_data
from surrogate.breaking import CAUSE_VARS

from evaluate_helpers import T_IN, make_checkpoint, make_dataset


@pytest.fixture(scope="module")
def cause_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("causedata")
    ds = make_dataset()
    rng = np.random.default_rng(3)
    shape = (ds.sizes["sim"], ds.sizes["y"], ds.sizes["x"])
    ds = ds.assign({c: (("sim", "y", "x"), rng.normal(size=shape).astype(np.float32))
                    for c in CAUSE_VARS})
    path = d / "data.nc"
    ds.to_netcdf(path)
    ckpt = make_checkpoint(d / "gc" / "best.pt", "gconv_unet", ds, seed=0,
                           breaking_inputs=["cause", "frame"])
    return path, ckpt


def test_evaluate_split_feeds_each_windows_cause(cause_data):
    path, ckpt = cause_data
    ds = open_data(path)
    sur = surrogate.load(ckpt)
    assert sur.aux_channels == CAUSE_VARS
    w = build_windows(sur.metadata, "test-domain", ds, T_IN, 3)
    res = evaluate_split(sur, ds, w, batch_size=5)
    aux = load_aux(ds, CAUSE_VARS, w.sims)
    i = len(w) - 1
    s, t = int(w.sims[i]), int(w.starts[i])
    hist = np.stack([ds[c].values[s, t:t + T_IN] for c in ("u", "v", "density")], axis=1)
    pred = sur.rollout(torch.from_numpy(hist[None]), 3, aux=torch.from_numpy(aux[i:i + 1]))
    truth = np.stack([ds[c].values[s, t + T_IN:t + T_IN + 3] for c in ("u", "v", "density")],
                     axis=1)
    rmse = np.sqrt(((pred[0].numpy() - truth) ** 2).mean(axis=(1, 2, 3)))
    np.testing.assert_allclose(res.per_step["rmse"][i], rmse, rtol=1e-4)

    with pytest.raises(EvaluationError, match="buoyancy_x"):
        evaluate_split(sur, ds.drop_vars(["buoyancy_x"]), w)


def test_model_equivariance_error_keeps_breaking_inputs_fixed():
    torch.manual_seed(0)
    x = torch.randn(2, 2, 3, 8, 8, dtype=torch.float64)
    aux = torch.randn(2, 5, 8, 8, dtype=torch.float64)
    tiny = dict(T_in=2, hidden=2, depth=2, norm_groups=1)
    cause = surrogate.build_model("gconv_unet", breaking_inputs=["cause"], **tiny)
    assert model_equivariance_error(cause, x, aux=aux).mean > 1e-3
    frame = surrogate.build_model("gconv_unet", breaking_inputs=["frame"], **tiny)
    assert model_equivariance_error(frame, x).mean > 1e-3


def test_report_runs_and_names_breaking_inputs(cause_data, tmp_path):
    path, ckpt = cause_data
    out = evaluate.run(ckpt, path, splits="test-domain", steps=2, out=tmp_path / "r",
                       device="cpu", stride=4, figures=False, equivariance_windows=2)
    text = (out / "summary.md").read_text()
    assert "breaking inputs" in text and "frame, cause" in text
