"""The five U-Net surrogates: equivariance, relaxation, export, shapes, registry, compile."""

import importlib.util
import json
import shutil

import pytest
import torch

from surrogate import (FieldLayout, available_models, build_model, count_parameters, export,
                       width_for_params)

from surrogate_helpers import equivariance_error

MODELS = ["unet", "gconv_unet", "relaxed_gconv_unet", "steer_unet", "relaxed_steer_unet"]
TINY = dict(T_in=2, hidden=2, depth=2)
STEER_MODULES = {"steer_unet": "surrogate.layers.steerable",
                 "relaxed_steer_unet": "surrogate.layers.relaxed_steerable"}


def _needs_module(name):
    """Skip steerable models only while the colleague's module does not exist yet."""
    mod = STEER_MODULES.get(name)
    if mod is not None and importlib.util.find_spec(mod) is None:
        pytest.skip(f"{mod} is not written yet")


def make(name, **kw):
    _needs_module(name)
    torch.manual_seed(0)
    return build_model(name, **{**TINY, **kw})


def frames(model, n=16, batch=2, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    c = model.layout.num_channels
    return torch.randn(batch, model.T_in, c, n, n, generator=gen, dtype=dtype)


def relaxation_parameters(model):
    """The parameters behind ``relaxation_weights()`` (the tensors returned may be the
    parameters themselves or detached views sharing their storage)."""
    ptrs = {t.data_ptr() for t in model.relaxation_weights().values()}
    return [p for p in model.parameters() if p.data_ptr() in ptrs]


STRICT = [("gconv_unet", "C4"), ("gconv_unet", "D4"), ("steer_unet", "C4"),
          ("steer_unet", "D4"), ("steer_unet", "C8")]
RELAXED = [("relaxed_gconv_unet", "C4"), ("relaxed_gconv_unet", "D4"),
           ("relaxed_steer_unet", "C4"), ("relaxed_steer_unet", "D4")]


@pytest.mark.parametrize("name,group", STRICT)
def test_strict_models_equivariant(name, group):
    model = make(name, group=group, depth=3).double()
    assert equivariance_error(model, frames(model)) < 1e-5
    pen = model.equivariance_penalty()
    assert pen.dim() == 0 and pen.item() == 0.0
    assert model.relaxation_weights() == {}


@pytest.mark.parametrize("name,group", RELAXED)
def test_relaxed_models(name, group):
    model = make(name, group=group, alpha=0.5).double()
    x = frames(model)
    assert equivariance_error(model, x) < 1e-5  # exactly equivariant at initialisation
    assert model.equivariance_penalty().item() == 0.0
    weights = model.relaxation_weights()
    assert weights and all(isinstance(t, torch.Tensor) for t in weights.values())
    params = relaxation_parameters(model)
    assert params
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in params:
            p.add_(0.1 * p.abs().mean().clamp_min(0.1)
                   * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    assert equivariance_error(model, x) > 1e-3
    pen = model.equivariance_penalty()
    assert pen.dim() == 0 and pen.item() > 0
    pen.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    assert model.export().equivariance_penalty().item() == 0.0


def test_plain_unet_is_not_equivariant():
    model = make("unet").double()
    assert model.group.order == 1 and model.config["group"] == "trivial"
    assert equivariance_error(model, frames(model)) > 1e-2


@pytest.mark.parametrize("name", MODELS)
def test_export_matches(name):
    model = make(name, alpha=1.0)
    with torch.no_grad():  # export must keep the relaxation
        for p in relaxation_parameters(model):
            p.add_(0.1 * torch.randn_like(p))
    x = frames(model, dtype=torch.float32)
    exported = export(model)
    assert exported is not model and exported.exported
    assert not any(type(m).__name__ not in ("Conv2d",) and hasattr(m, "expand_filter")
                   for m in exported.modules())
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x), rtol=1e-4, atol=1e-5)
    # the exported structure can be rebuilt from the config (for exported checkpoints)
    rebuilt = build_model(**{**model.config, "exported": True})
    rebuilt.load_state_dict(exported.state_dict())


@pytest.mark.parametrize("n", [32, 64])
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name, n):
    model = make(name, depth=3)
    x = frames(model, n=n, dtype=torch.float32).requires_grad_(True)
    y = model(x)
    assert y.shape == (2, 3, n, n)
    (y.square().mean() + model.equivariance_penalty()).backward()
    assert x.grad is not None
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_layouts_and_options():
    layout = {"channels": ["density", "u", "v", "w1", "w2"], "vectors": [["u", "v"], ["w1", "w2"]]}
    model = make("gconv_unet", group="D4", layout=layout, residual=False, upsample="nearest",
                 num_blocks=2, kernel_size=5, depth=2).double()
    assert model.layout == FieldLayout.from_dict(layout)
    assert equivariance_error(model, frames(model, n=12)) < 1e-5
    json.dumps(model.config)  # JSON-able, layout as a dict
    again = build_model(**model.config)
    assert count_parameters(again) == count_parameters(model)
    again.load_state_dict(model.state_dict())


def test_registry_errors():
    # the paper's other models, tested in test_relaxed_translation.py, test_rpp.py,
    # test_combo.py and test_clc.py
    assert available_models() == MODELS + ["rpp_unet", "relaxed_conv_unet", "combo_unet",
                                           "clc_unet"]
    with pytest.raises(ValueError, match="relaxed_gconv_unet"):
        build_model("resnet")
    with pytest.raises(ValueError, match="hidden"):
        build_model("unet", hiden=4)
    with pytest.raises(ValueError, match="steer"):
        build_model("gconv_unet", group="C8")
    with pytest.raises(ValueError, match="C4"):
        build_model("gconv_unet", group="C5")
    with pytest.raises(ValueError, match="positive"):
        build_model("unet", depth=0)
    # options that do not apply are accepted and left out of the config
    assert "num_banks" not in build_model("gconv_unet", num_banks=3, **TINY).config
    assert build_model("relaxed_gconv_unet", num_banks=3, **TINY).config["num_banks"] == 3


def test_input_errors():
    model = make("gconv_unet", depth=3)
    with pytest.raises(ValueError, match="B, T_in, C, H, W"):
        model(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="T_in=2"):
        model(torch.zeros(1, 3, 3, 16, 16))
    with pytest.raises(ValueError, match="channels"):
        model(torch.zeros(1, 2, 2, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        model(torch.zeros(1, 2, 3, 18, 18))


@pytest.mark.parametrize("name", ["unet", "gconv_unet", "relaxed_gconv_unet"])
def test_width_for_params(name):
    target = 20_000
    h = width_for_params(name, target, T_in=2, depth=2)
    counts = {w: count_parameters(build_model(name, hidden=w, T_in=2, depth=2))
              for w in (max(h - 1, 1), h, h + 1)}
    assert abs(counts[h] - target) == min(abs(c - target) for c in counts.values())


def _compile_available(backend):
    if not hasattr(torch, "compile"):
        return False
    try:
        import torch._dynamo as dynamo
        if not dynamo.is_dynamo_supported():
            return False
    except Exception:
        return False
    return backend != "inductor" or shutil.which("g++") or shutil.which("c++")


def test_torch_compile_training_graph():
    """Dynamo captures forward + backward of a model as ONE graph (no graph breaks)."""
    if not _compile_available("aot_eager"):
        pytest.skip("torch.compile is not available here")
    torch._dynamo.reset()
    model = make("relaxed_gconv_unet", alpha=1.0).float()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = frames(model, dtype=torch.float32)
    loss = compiled(x).square().mean() + model.equivariance_penalty()
    loss.backward()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_torch_compile_inductor_inference():
    """The default backend (inductor, C++ code generation) on a small exported model."""
    if not _compile_available("inductor"):
        pytest.skip("torch.compile with inductor needs a C++ compiler")
    torch._dynamo.reset()
    model = make("gconv_unet").export().eval()
    x = frames(model, dtype=torch.float32)
    with torch.no_grad():
        compiled = torch.compile(model, fullgraph=True)
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
