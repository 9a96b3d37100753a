"""Self-describing, corruption-checked checkpoints.

A checkpoint is a plain dict of tensors, numbers and JSON strings (model name and
constructor config, weights, normalisation, JSON metadata and optionally a training
state for resuming), written atomically with ``torch.save`` and read back with
``torch.load(weights_only=True)``: no pickled code ever runs on load.

* **corruption is detected**: a SHA-256 digest over every stored field (training state
  included) is checked on every read; a changed byte is refused.
* **provenance only with a key**: the digest is unkeyed (whoever can write the file can
  recompute it). Save with ``key=`` (secret bytes/str) to store an HMAC-SHA256
  signature; a read with the same ``key`` refuses an unsigned or mismatching file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checkpoint_facts
from .diskfull import disk_full_error
from .normalization import Normalization
from .records import RecordError, TrainingRecord

__all__ = ["CheckpointError", "save", "read_checkpoint", "load_model", "FORMAT"]

FORMAT = "relaxflow.checkpoint"
FORMAT_VERSION = 2      # 2: the digest covers every field, training state included
#: the environment variable holding the checkpoint key: train signs with it, evaluate
#: refuses checkpoints not signed with it
KEY_ENV = "RELAXFLOW_CHECKPOINT_KEY"
_REQUIRED = ("format", "format_version", "model_config", "state_dict", "normalization",
             "metadata", "digest")
_UNHASHED = ("digest", "signature")


class CheckpointError(ValueError):
    """A file that is not a valid relaxflow checkpoint (foreign, truncated or tampered)."""


def _package_version() -> str:
    try:
        from importlib.metadata import version
        return version("relaxflow")
    except Exception:  # pragma: no cover - running from a source tree without install
        return "unknown"


def _digest_v1(model_config: str, state_dict: dict[str, torch.Tensor], normalization: str,
               metadata: str) -> str:
    """Format 1's digest (weights, config, normalisation, metadata; no training state)."""
    h = hashlib.sha256()
    for text in (model_config, normalization, metadata):
        h.update(text.encode())
        h.update(b"\0")
    for key in sorted(state_dict):
        _hash_tensor(h, key, state_dict[key])
    return h.hexdigest()


def _hash_tensor(h, key: str, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(key.encode())
    h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def _hash_value(h, v: Any) -> None:
    """Feed ``v`` (tensors, numbers, strings, bytes, None, lists, tuples, dicts) to ``h``
    with a type tag per node, so that no two different values hash alike."""
    if isinstance(v, torch.Tensor):
        h.update(b"T")
        _hash_tensor(h, "", v)
    elif v is None or isinstance(v, bool):
        h.update(b"N" if v is None else b"B1" if v else b"B0")
    elif isinstance(v, int):
        h.update(b"I" + str(v).encode() + b"\0")
    elif isinstance(v, float):
        h.update(b"F" + v.hex().encode() + b"\0")
    elif isinstance(v, (str, bytes, bytearray)):
        b = v.encode() if isinstance(v, str) else bytes(v)
        h.update((b"S" if isinstance(v, str) else b"Y") + str(len(b)).encode() + b":" + b)
    elif isinstance(v, (list, tuple)):
        h.update((b"L" if isinstance(v, list) else b"U") + str(len(v)).encode() + b"[")
        for item in v:
            _hash_value(h, item)
        h.update(b"]")
    elif isinstance(v, dict):
        h.update(b"D" + str(len(v)).encode() + b"{")
        for k in sorted(v, key=lambda k: (type(k).__name__, str(k))):
            _hash_value(h, k)
            _hash_value(h, v[k])
        h.update(b"}")
    else:
        raise TypeError(f"cannot store a {type(v).__name__} in a checkpoint")


def _digest(payload: dict[str, Any]) -> str:
    """SHA-256 over every field of ``payload`` but the digest and signature."""
    h = hashlib.sha256(b"relaxflow.checkpoint/2\0")
    _hash_value(h, {k: v for k, v in payload.items() if k not in _UNHASHED})
    return h.hexdigest()


def _signature(digest: str, key: bytes | str) -> str:
    """HMAC-SHA256 of the digest under the user's ``key`` (non-empty str or bytes)."""
    key = key.encode() if isinstance(key, str) else key
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise ValueError("a checkpoint signing key must be a non-empty str or bytes")
    return hmac.new(bytes(key), digest.encode(), hashlib.sha256).hexdigest()


def file_mode() -> int:
    """The mode a new file gets under the process's umask (``0o666 & ~umask``)."""
    try:  # Linux: read it without touching the process state
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)  # pragma: no cover
    os.umask(mask)  # pragma: no cover
    return 0o666 & ~mask  # pragma: no cover


def save(model: nn.Module, path: str | os.PathLike, *,
         normalization: Normalization | None = None, metadata: dict | None = None,
         training_state: dict | None = None, key: bytes | str | None = None) -> Path:
    """Write ``model`` (config + weights), its normalisation and JSON-able ``metadata``
    to ``path`` atomically (temporary file + rename). ``training_state`` (optimiser,
    scheduler, RNG, epoch, ...) may hold tensors, numbers, strings, lists and dicts.
    ``key``: sign the file (HMAC-SHA256) so that :func:`read_checkpoint` with the same
    key can tell it was written by someone holding the key. A disk that fills up raises
    the one-line :class:`surrogate.diskfull.DiskFullError` and leaves no partial file."""
    path = Path(path)
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "name" not in config:
        raise TypeError("only models made by surrogate.build_model (with a .config dict "
                        "holding 'name') can be saved")
    try:  # the model config is the one home of the model's name and T_in
        metadata = checkpoint_facts.strip(metadata or {}, config)
    except checkpoint_facts.FactConflict as e:
        raise ValueError(f"cannot save {path}: {e}") from None
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "relaxflow_version": _package_version(),
        "torch_version": str(torch.__version__),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model_config": json.dumps(config, sort_keys=True),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "normalization": json.dumps(normalization.to_dict() if normalization is not None
                                    else None),
        "metadata": json.dumps(metadata, sort_keys=True),
    }
    if training_state is not None:
        payload["training_state"] = training_state
    payload["digest"] = _digest(payload)
    if key is not None:
        payload["signature"] = _signature(payload["digest"], key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; a checkpoint follows the umask
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        full = disk_full_error(e, path)  # before the partial file goes: it fills the disk
        Path(tmp).unlink(missing_ok=True)
        if full is not None:
            raise full from e
        raise
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                    key: bytes | str | None = None) -> dict:
    """Load and validate a checkpoint; JSON fields come back decoded (``model_config``,
    ``normalization`` as a :class:`Normalization` or None, ``metadata``). With ``key``
    the file must carry a matching HMAC signature (see :func:`save`)."""
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
    version = raw["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: format_version must be a positive integer, got "
                              f"{version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version} is newer "
                              f"than this relaxflow understands ({FORMAT_VERSION}); upgrade")
    _check_types(path, raw)
    try:
        digest = (_digest(raw) if version >= 2 else
                  _digest_v1(raw["model_config"], raw["state_dict"], raw["normalization"],
                             raw["metadata"]))
    except TypeError as e:
        raise CheckpointError(f"{path}: {e}") from None
    if not isinstance(raw["digest"], str) or not hmac.compare_digest(digest, raw["digest"]):
        raise CheckpointError(f"{path}: checksum mismatch: the file was modified or "
                              "corrupted after it was written")
    if key is not None:
        sig = raw.get("signature")
        if not isinstance(sig, str):
            raise CheckpointError(f"{path}: the file is not signed, but a signing key was "
                                  "given: it was not written by a holder of the key")
        if not hmac.compare_digest(_signature(digest, key), sig):
            raise CheckpointError(f"{path}: signature mismatch: the file was not written "
                                  "with this key (or was changed since)")
    out = dict(raw)
    out["model_config"] = _json_field(path, raw, "model_config", dict)
    if "name" not in out["model_config"] or not isinstance(out["model_config"]["name"], str):
        raise CheckpointError(f"{path}: model_config names no model ('name' missing)")
    norm = _json_field(path, raw, "normalization", (dict, type(None)))
    try:
        out["normalization"] = Normalization.from_dict(norm) if norm is not None else None
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid normalization record "
                              f"({type(e).__name__}: {e})") from None
    out["metadata"] = _metadata(path, raw, out["model_config"])
    return out


def _metadata(path: Path, raw: dict, config: dict) -> dict:
    """The metadata with the copies of the model's name and ``T_in`` given from their
    one home, ``config``; every field a reader relies on has its type."""
    try:
        meta = checkpoint_facts.restore(_json_field(path, raw, "metadata", dict), config)
        TrainingRecord.from_dict(meta)
        checkpoint_facts.check(meta, config)
    except (RecordError, checkpoint_facts.FactConflict) as e:
        raise CheckpointError(f"{path}: {e}") from None
    return meta


def _check_types(path: Path, raw: dict) -> None:
    """One-line errors for fields of the wrong type (a crafted or foreign file)."""
    for name in ("model_config", "normalization", "metadata"):
        if not isinstance(raw[name], str):
            raise CheckpointError(f"{path}: field {name!r} must be a JSON string, got "
                                  f"{type(raw[name]).__name__}")
    sd = raw["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                           for k, v in sd.items()):
        raise CheckpointError(f"{path}: field 'state_dict' must map names to tensors, got "
                              f"{type(sd).__name__}")
    ts = raw.get("training_state")
    if ts is not None and not isinstance(ts, dict):
        raise CheckpointError(f"{path}: field 'training_state' must be a dict, got "
                              f"{type(ts).__name__}")


def _json_field(path: Path, raw: dict, name: str, kind) -> Any:
    try:
        value = json.loads(raw[name])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: field {name!r} is not valid JSON ({e})") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: field {name!r} must hold a JSON "
                              f"{'object' if kind is dict else 'object or null'}, got "
                              f"{type(value).__name__}")
    return value


def model_from_checkpoint(ckpt: dict, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model of a checkpoint read by :func:`read_checkpoint`."""
    from .registry import build_model

    config = dict(ckpt["model_config"])
    name = config.pop("name")
    try:
        model = build_model(name, **config)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"the checkpoint's model config cannot be built: {e}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"weights do not fit model {name!r}: {e}") from e
    return model.to(device).eval()


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", *,
               key: bytes | str | None = None) -> nn.Module:
    """The model stored in ``path``, in eval mode on ``device`` (``key``: see
    :func:`read_checkpoint`)."""
    return model_from_checkpoint(read_checkpoint(path, key=key), device)
