"""One set of device names (surrogate.devices), used by surrogate.load too."""

import pytest
import torch

from surrogate import build_model
from surrogate.checkpoint import save
from surrogate.devices import (DEVICE_HELP, DeviceError, check_device_name,
                               resolve_device)
from surrogate.forecast import load

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_accepted_names(name):
    assert check_device_name(name) == name
    assert check_device_name(torch.device("cpu")) == "cpu"


@pytest.mark.parametrize("name", ["gpu", "GPU", "CPU", "cuda:", "cuda:-1", "mps", "", 0, None])
def test_other_names_are_one_line_value_errors(name):
    with pytest.raises(ValueError) as info:
        check_device_name(name)
    msg = str(info.value)
    assert isinstance(info.value, DeviceError) and "\n" not in msg
    assert repr(name) in msg and DEVICE_HELP in msg


def test_auto_and_cpu_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == resolve_device("auto")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@NO_CUDA
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_one_line(name):
    with pytest.raises(DeviceError, match=f"^{name} requested but torch sees no CUDA "
                                          "device$"):
        resolve_device(name)


@pytest.fixture()
def ckpt(tmp_path):
    return save(build_model("unet", T_in=2, hidden=2, depth=2, norm_groups=1),
                tmp_path / "m.pt")


def test_load_refuses_gpu_with_the_accepted_names(ckpt):
    # was torch's RuntimeError listing two dozen backends
    with pytest.raises(ValueError, match=r"unknown device 'gpu'; accepted: auto, cpu, "
                                         r"cuda or cuda:N"):
        load(ckpt, device="gpu")
    assert load(ckpt, device="cpu").device == torch.device("cpu")
    assert load(ckpt, device=None).device.type == resolve_device("auto").type


@NO_CUDA
def test_load_on_cuda_without_cuda(ckpt):
    with pytest.raises(DeviceError, match="cuda requested but torch sees no CUDA device"):
        load(ckpt, device="cuda")
