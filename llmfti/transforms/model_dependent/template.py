"""Prompt templates: versioned YAML files in `configs/prompts/NAME.yaml`, validated by `PromptTemplate`.

A template names its slots with Python format syntax: `{question}`, `{contexts}` (the numbered
block built from `context_format`) and one slot per declared on-demand feature (`features`).
Values are substituted once and never re-parsed, so braces inside a question or a context are safe.

    tmpl = load_prompt_template("rag-default")      # or a path to a YAML file
    system, user = tmpl.render("What is a generator?", contexts, {"today": "2026-01-02"})
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from llmfti.config.base import StrictModel
from llmfti.errors import ConfigError

RESERVED_SLOTS = {"question", "contexts"}
CONTEXT_SLOTS = {"index", "text", "source", "chunk_id", "score"}


@dataclass
class Context:
    """One retrieved context, best first in any list: ranking decides what truncation drops."""

    chunk_id: str
    text: str
    score: float = 0.0
    source: str = ""


def _slots(fmt: str, what: str) -> set[str]:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None]
    except ValueError as exc:
        raise ValueError(f"{what}: invalid format string: {exc}") from exc
    bad = [f for f in fields if not f.isidentifier()]
    if bad:
        # Attribute/index access ({a.b}, {a[0]}) and positional slots ({}) would make templates code.
        raise ValueError(f"{what}: slots must be plain names, got {bad}")
    return set(fields)


class PromptTemplate(StrictModel):
    """A versioned prompt template (model-dependent transformation input)."""

    name: str = Field(description="Template name; the file is configs/prompts/NAME.yaml.")
    version: int = Field(1, ge=1, description="Bump on every change: the encoder fingerprint changes anyway, this is for humans.")
    description: str = Field("", description="What the template is for.")
    system: str = Field("", description="System message (format slots allowed); empty means no system message.")
    user: str = Field(description="User message with slots {question}, optionally {contexts} and feature names.")
    context_format: str = Field("[{index}] {text}", description="One context; slots: index (1-based), text, source, chunk_id, score.")
    context_separator: str = Field("\n\n", description="Between formatted contexts.")
    no_contexts: str = Field("(no context was found)", description="Rendered in place of {contexts} when none are given or all were dropped.")
    features: list[str] = Field(default_factory=list, description="On-demand feature names usable as slots; each must be given at encode time.")

    @field_validator("features")
    @classmethod
    def _features_are_names(cls, v: list[str]) -> list[str]:
        for f in v:
            if not f.isidentifier() or f in RESERVED_SLOTS:
                raise ValueError(f"feature {f!r} must be an identifier other than {sorted(RESERVED_SLOTS)}")
        if len(set(v)) != len(v):
            raise ValueError("features must be unique")
        return v

    @model_validator(mode="after")
    def _check_slots(self) -> "PromptTemplate":
        allowed = RESERVED_SLOTS | set(self.features)
        used = _slots(self.system, "system") | _slots(self.user, "user")
        unknown = used - allowed
        if unknown:
            raise ValueError(f"unknown slots {sorted(unknown)}: declare on-demand features under `features`")
        if "question" not in _slots(self.user, "user"):
            raise ValueError("the user template must contain {question}")
        unknown_ctx = _slots(self.context_format, "context_format") - CONTEXT_SLOTS
        if unknown_ctx:
            raise ValueError(f"context_format: unknown slots {sorted(unknown_ctx)}; allowed {sorted(CONTEXT_SLOTS)}")
        return self

    @property
    def uses_contexts(self) -> bool:
        return "contexts" in (_slots(self.system, "system") | _slots(self.user, "user"))

    def format_contexts(self, contexts: list[Context]) -> str:
        if not contexts:
            return self.no_contexts
        return self.context_separator.join(
            self.context_format.format(index=i, text=c.text, source=c.source, chunk_id=c.chunk_id, score=c.score)
            for i, c in enumerate(contexts, 1)
        )

    def messages(self, question: str, contexts: list[Context] = (), features: dict | None = None) -> list[dict]:
        """Chat messages (system if any, then user) for the tokenizer's chat template."""
        features = dict(features or {})
        missing = [f for f in self.features if f not in features]
        if missing:
            raise ConfigError(f"prompt template {self.name!r} needs on-demand feature(s) {missing}")
        extra = sorted(set(features) - set(self.features))
        if extra:
            raise ConfigError(f"prompt template {self.name!r} does not declare feature(s) {extra}")
        values = {k: str(v) for k, v in features.items()}
        values.update(question=question, contexts=self.format_contexts(list(contexts)))
        out = []
        if self.system:
            out.append({"role": "system", "content": self.system.format(**values)})
        out.append({"role": "user", "content": self.user.format(**values)})
        return out


def prompts_dirs() -> list[Path]:
    """Where template names are looked up: ./configs/prompts, then the repository's configs/prompts."""
    repo = Path(__file__).resolve().parents[3] / "configs" / "prompts"
    return [Path.cwd() / "configs" / "prompts", repo]


def load_prompt_template(name_or_path: str | Path) -> PromptTemplate:
    """A template from a YAML path, or by NAME from `configs/prompts/NAME.yaml`."""
    from llmfti.config.base import load_config

    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return load_config(PromptTemplate, p)
    for d in prompts_dirs():
        f = d / f"{name_or_path}.yaml"
        if f.is_file():
            return load_config(PromptTemplate, f)
    from llmfti.errors import NotFoundError

    known = sorted({f.stem for d in prompts_dirs() if d.is_dir() for f in d.glob("*.yaml")})
    raise NotFoundError(f"prompt template {name_or_path!r} not found (known: {', '.join(known) or 'none'})")
