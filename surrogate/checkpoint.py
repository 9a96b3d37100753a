"""Self-describing, tamper-evident checkpoints.

A checkpoint is a plain dict of tensors, numbers and JSON strings, written atomically
with ``torch.save`` and read back with ``torch.load(weights_only=True)`` (no pickled
code is ever executed). It holds the model's name and constructor config, its weights,
the normalisation, free JSON metadata (training config, splits, breaking inputs, ...)
and, optionally, a training state for resuming. A SHA-256 digest over everything but
the training state detects a tampered file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .normalization import Normalization

__all__ = ["CheckpointError", "save", "read_checkpoint", "load_model", "FORMAT"]

FORMAT = "relaxflow.checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("format", "format_version", "model_config", "state_dict", "normalization",
             "metadata", "digest")


class CheckpointError(ValueError):
    """A file that is not a valid relaxflow checkpoint (foreign, truncated or tampered)."""


def _package_version() -> str:
    try:
        from importlib.metadata import version
        return version("relaxflow")
    except Exception:  # pragma: no cover - running from a source tree without install
        return "unknown"


def _digest(model_config: str, state_dict: dict[str, torch.Tensor], normalization: str,
            metadata: str) -> str:
    h = hashlib.sha256()
    for text in (model_config, normalization, metadata):
        h.update(text.encode())
        h.update(b"\0")
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _model_config(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "name" not in config:
        raise TypeError("only models made by surrogate.build_model (with a .config dict "
                        "holding 'name') can be saved")
    return config


def save(model: nn.Module, path: str | os.PathLike, *,
         normalization: Normalization | None = None, metadata: dict | None = None,
         training_state: dict | None = None) -> Path:
    """Write ``model`` (config + weights), its normalisation and JSON-able ``metadata``
    to ``path`` atomically (temporary file + rename). ``training_state`` (optimiser,
    scheduler, RNG, epoch, ...) may hold tensors, numbers, strings, lists and dicts."""
    path = Path(path)
    config = json.dumps(_model_config(model), sort_keys=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    norm = json.dumps(normalization.to_dict() if normalization is not None else None)
    meta = json.dumps(metadata or {}, sort_keys=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "relaxflow_version": _package_version(),
        "torch_version": str(torch.__version__),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model_config": config,
        "state_dict": state,
        "normalization": norm,
        "metadata": meta,
        "digest": _digest(config, state, norm, meta),
    }
    if training_state is not None:
        payload["training_state"] = training_state
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate a checkpoint; JSON fields come back decoded (``model_config``,
    ``normalization`` as a :class:`Normalization` or None, ``metadata``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a relaxflow checkpoint (it is truncated, not a "
                              f"torch file, or holds pickled objects that are refused: "
                              f"{type(e).__name__})") from e
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a relaxflow checkpoint (no '{FORMAT}' marker)")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    if raw["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {raw['format_version']} is newer "
                              f"than this relaxflow understands ({FORMAT_VERSION}); upgrade")
    if _digest(raw["model_config"], raw["state_dict"], raw["normalization"],
               raw["metadata"]) != raw["digest"]:
        raise CheckpointError(f"{path}: checksum mismatch: the file was modified or "
                              "corrupted after it was written")
    out = dict(raw)
    out["model_config"] = json.loads(raw["model_config"])
    norm = json.loads(raw["normalization"])
    out["normalization"] = Normalization.from_dict(norm) if norm is not None else None
    out["metadata"] = json.loads(raw["metadata"])
    return out


def model_from_checkpoint(ckpt: dict, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model of a checkpoint read by :func:`read_checkpoint`."""
    from .registry import build_model

    config = dict(ckpt["model_config"])
    name = config.pop("name")
    model = build_model(name, **config)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"weights do not fit model {name!r}: {e}") from e
    return model.to(device).eval()


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """The model stored in ``path``, in eval mode on ``device``."""
    return model_from_checkpoint(read_checkpoint(path), device)
