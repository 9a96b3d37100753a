"""Scenario specs as TOML: :func:`load_spec` reads a full spec or ``preset = "name"``
with a ``[params]`` table; :func:`spec_to_toml` writes a spec that reads back equal."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from .presets import preset
from .spec import ScenarioSpec, SpecError

__all__ = ["load_spec", "spec_to_toml"]


def load_spec(path: str | Path, **overrides) -> ScenarioSpec:
    """Read a TOML spec: either a full spec (top-level keys of :class:`ScenarioSpec`,
    ``[solver]``, ``[[sims]]``) or ``preset = "name"`` with an optional ``[params]`` table."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file {path} not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SpecError(f"spec file {path} is not valid TOML: {e}") from None
    if "preset" in data:
        params = dict(data.get("params", {}), **overrides)
        if extra := set(data) - {"preset", "params"}:
            raise SpecError(f"{path}: with 'preset', only a [params] table is allowed (found {', '.join(sorted(extra))})")
        return preset(data["preset"], **params)
    data.update(overrides)
    data.setdefault("name", path.stem)
    return ScenarioSpec.from_dict(data).validate()


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)              # also nan, inf and -inf, as TOML spells them
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(_toml_items(v)) + "}"
    raise TypeError(f"cannot write {type(v)} to TOML")


def _toml_items(d: dict) -> list[str]:
    return [f"{k} = {_toml_value(v)}" for k, v in d.items() if v is not None]


def spec_to_toml(spec: ScenarioSpec) -> str:
    """Write a spec as TOML that :func:`load_spec` reads back to an equal spec."""
    d = spec.to_dict()
    top = {k: v for k, v in d.items() if k not in ("sims", "solver")}
    lines = [f"# relaxflow scenario spec ({spec.name})", *_toml_items(top), "\n[solver]"]
    lines += _toml_items(d["solver"])
    for s in d["sims"]:
        lines += ["\n[[sims]]", *_toml_items(s)]
    return "\n".join(lines) + "\n"
