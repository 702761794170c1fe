"""Loading YAML configs into pydantic models, with `key.sub=value` overrides from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from llmfti.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for configs: unknown keys are errors, so a typo never silently falls back to a default."""

    model_config = {"extra": "forbid", "validate_assignment": True}


def _parse_scalar(raw: str):
    import yaml

    # YAML scalar rules give the CLI the same typing as the file: 3 -> int, true -> bool, [a,b] -> list.
    return yaml.safe_load(raw)


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Apply `a.b=value` strings onto a nested dict (returns a new dict)."""
    import copy

    out = copy.deepcopy(data)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. chunker.chunk_tokens=128)")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = _parse_scalar(raw)
    return out


def load_config(model: type[M], path: str | Path | None = None, overrides: list[str] | None = None) -> M:
    """Validate `path` (YAML) plus overrides against `model`; errors name the file and the field."""
    import yaml

    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
    return validate_config(model, apply_overrides(data, overrides), path)


def validate_config(model: type[M], data: dict, path: str | Path | None = None) -> M:
    """Validate a dict against a config model; errors become a ConfigError naming file and fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}invalid {model.__name__}: {problems}") from exc
