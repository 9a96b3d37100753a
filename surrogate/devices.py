"""Device names: one set for every command (``simulate``, ``train``, ``evaluate``) and
for :func:`surrogate.load`.

Accepted names (:data:`DEVICE_NAMES`):

* ``auto``: the CUDA GPU when torch sees one, else the CPU;
* ``cpu``;
* ``cuda``: torch's current CUDA GPU (normally the first);
* ``cuda:N``: CUDA GPU number ``N`` (0-based).

``gpu`` is not a name: torch calls a GPU ``cuda``, and one spelling everywhere keeps
checkpoints' and reports' device fields comparable (``gpu`` is refused like any other
unknown name, with the accepted names in the message).
"""

from __future__ import annotations

import re

import torch

__all__ = ["DEVICE_NAMES", "DEVICE_HELP", "DeviceError", "check_device_name",
           "resolve_device"]

DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N")
#: the accepted names, as help texts and error messages write them
DEVICE_HELP = "auto, cpu, cuda or cuda:N (N: the GPU's index)"
_NAME = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


class DeviceError(ValueError):
    """A device name that is not accepted, or a CUDA device torch does not see."""


def check_device_name(name: object) -> str:
    """``name`` (a string, or a ``torch.device`` of type cpu or cuda) as its accepted
    spelling; raises :class:`DeviceError` naming the value and the accepted names.
    Checks the spelling only (no CUDA needed): see :func:`resolve_device`."""
    text = str(name) if isinstance(name, torch.device) else name
    if not isinstance(text, str) or not _NAME.fullmatch(text):
        raise DeviceError(f"unknown device {name!r}; accepted: {DEVICE_HELP}")
    return text


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` an accepted name stands for (None: ``auto``). Raises
    :class:`DeviceError` for an unknown name, and for a CUDA name when torch sees no
    CUDA device (or fewer than ``N + 1`` for ``cuda:N``)."""
    text = check_device_name("auto" if name is None else name)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(text)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{text} requested but torch sees no CUDA device")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceError(f"{text} requested but torch sees {count} CUDA device(s) "
                              f"(cuda:0 .. cuda:{count - 1})")
    return dev
