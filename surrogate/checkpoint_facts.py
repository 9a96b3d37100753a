"""One home for the facts a checkpoint's model config and its metadata share.

The model config (what :func:`surrogate.build_model` is called with) is the one place a
checkpoint stores the model's name and its input length ``T_in``. The training metadata
used to repeat them (top-level ``model`` / ``T_in``, ``splits.T_in``, ``train_config``'s
``model`` / ``T_in``), and readers picked different copies. (Metadata of another kind,
a user's own, is stored and read back exactly as given.) Now :func:`strip` drops the
copies when a checkpoint is written (refusing metadata that contradicts the model), and
:func:`restore` puts them back, from the model config, when it is read, so every reader
sees one value. Files written with the copies still load; one whose copies contradict
its model config is refused with one line (:func:`check`).
"""

from __future__ import annotations

from typing import Any

from .records import TRAINING_KIND

#: (path in the metadata, key of the model config) of every copy
COPIES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("model",), "name"),
    (("T_in",), "T_in"),
    (("splits", "T_in"), "T_in"),
    (("train_config", "model"), "name"),
    (("train_config", "T_in"), "T_in"),
)


class FactConflict(ValueError):
    """Metadata that repeats a model-config fact with another value."""


def _parent(meta: dict, path: tuple[str, ...]) -> dict | None:
    """The dict holding ``path[-1]`` (None when a level is missing or not a dict)."""
    node: Any = meta
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _copy(meta: dict) -> dict:
    """``meta`` with its top-level dicts copied (every copy lives one level down)."""
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in meta.items()}


def check(meta: dict, config: dict) -> None:
    """Raise :class:`FactConflict` where a training metadata's copy differs from the
    model config."""
    if not is_training(meta):
        return
    for path, key in COPIES:
        parent = _parent(meta, path)
        if parent is not None and path[-1] in parent and key in config \
                and parent[path[-1]] != config[key]:
            raise FactConflict(f"metadata {'.'.join(path)}={parent[path[-1]]!r} contradicts "
                               f"the model config's {key}={config[key]!r}")


def strip(meta: dict, config: dict) -> dict:
    """``meta`` without the copies of ``config``'s facts (a new dict; ``meta`` is not
    changed). :class:`FactConflict` when a copy differs from the model config."""
    check(meta, config)
    out = _copy(meta)
    if not is_training(meta):
        return out
    for path, key in COPIES:
        parent = _parent(out, path)
        if parent is not None and key in config:
            parent.pop(path[-1], None)
    return out


def restore(meta: dict, config: dict) -> dict:
    """``meta`` with every missing copy filled in from ``config`` (a new dict): the
    top-level ``model`` and ``T_in`` always, ``splits`` and ``train_config`` where the
    metadata has them. Copies an older file stored are kept: :func:`check` them."""
    out = _copy(meta)
    if not is_training(meta):
        return out
    for path, key in COPIES:
        parent = _parent(out, path)
        if _usable(config, key) and parent is not None and (len(path) == 1 or parent):
            parent.setdefault(path[-1], config[key])
    return out


def is_training(meta: dict) -> bool:
    """Whether ``meta`` is a training run's metadata (other metadata is kept as given)."""
    return meta.get("kind") == TRAINING_KIND


def _usable(config: dict, key: str) -> bool:
    """Whether ``config[key]`` is a name / length worth copying (a malformed config is
    left for the model builder to name)."""
    v = config.get(key)
    return isinstance(v, str) if key == "name" else isinstance(v, int) and not isinstance(
        v, bool)
