"""ModelVersion (one registered NAME:VERSION) and parsing of model references."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from llmfti.errors import ConfigError

# \A...\Z and fullmatch: `match` with `$` also accepts a trailing newline ("name\n").
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
STATUSES = ("registered", "staging", "production", "archived")


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise ConfigError(f"invalid model name {name!r}: use letters, digits, '_', '-', '.' (no '/' or ':')")
    return name


def parse_model_ref(ref: str) -> tuple[str, int | str | None]:
    """'NAME' -> latest; 'NAME:3' -> version 3; 'NAME:production' -> latest version with that status."""
    name, _, version = ref.partition(":")
    check_name(name)
    if not version:
        return name, None
    if version.isdigit() and int(version) >= 1:
        return name, int(version)
    if version in STATUSES:
        return name, version
    raise ConfigError(f"invalid version in {ref!r}: expected NAME, NAME:N (N >= 1) or NAME:<status> ({', '.join(STATUSES)})")


@dataclass
class ModelVersion:
    """A registered model version: base model, optional adapter, encoder fingerprint, lineage, results."""

    name: str
    version: int
    base_model: str
    status: str
    created_at: datetime
    encoder_fingerprint: str
    fingerprint_components: dict
    prompt_template: str
    prompt_template_version: int
    max_prompt_tokens: int
    max_answer_tokens: int
    path: Path  # the version folder: config.json, tokenizer/, prompt_template.yaml, adapter/
    adapter_sha256: str | None = None
    training_dataset: str | None = None
    lineage: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    evals: list = field(default_factory=list)
    status_changed_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def adapter_dir(self) -> Path | None:
        return self.path / "adapter" if self.adapter_sha256 else None

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    @property
    def prompt_template_path(self) -> Path:
        return self.path / "prompt_template.yaml"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ref"] = self.ref
        out["path"] = str(self.path)
        return out
