"""Generation backends' shared types: settings, results, errors, and the backend interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator

from pydantic import Field

from llmfti.config.base import StrictModel
from llmfti.errors import LlmftiError


class GenerationTimeout(LlmftiError):
    """Generation did not finish within the deployment's timeout (HTTP 504)."""

    exit_code = 6


class BackendUnavailable(LlmftiError):
    """The generation backend (e.g. an OpenAI-compatible server) failed or is unreachable (HTTP 502)."""

    exit_code = 7


class GenerationSettings(StrictModel):
    max_new_tokens: int = Field(128, ge=1, le=8192, description="Upper bound on generated tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy (reproducible, replayable).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass when temperature > 0.")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="A request whose generation takes longer gets 504.")


@dataclass
class GenerationRequest:
    """What a backend receives: the encoded prompt (ids for in-process models) and the chat messages
    it was rendered from (for OpenAI-compatible servers, which apply the chat template themselves)."""

    input_ids: list[int]
    messages: list[dict] = field(default_factory=list)
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    tools: list[dict] | None = None


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS) or "length"
    token_ids: list[int] = field(default_factory=list)


class Generator(ABC):
    """A text generation backend. `warm_up()` loads weights or opens clients; it is called once."""

    name: str = "generator"

    def warm_up(self) -> None:
        pass

    @abstractmethod
    def generate(self, request: GenerationRequest) -> Generation: ...

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Text pieces as they are produced; the default yields the whole answer at once."""
        yield self.generate(request).text

    def close(self) -> None:
        pass
