"""Generation backends' shared types: requests, results, errors, and the backend interface
(`GenerationSettings` lives with the configs: a deployment's tuple includes it)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from llmfti.config.generation import GenerationSettings
from llmfti.errors import LlmftiError


class GenerationTimeout(LlmftiError):
    """Generation did not finish within the deployment's timeout (HTTP 504)."""

    exit_code = 7


class BackendUnavailable(LlmftiError):
    """The generation backend (e.g. an OpenAI-compatible server) failed or is unreachable (HTTP 502)."""

    exit_code = 8


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
        """Text pieces as they are produced, then (as the generator's return value, PEP 380) the whole
        `Generation` with its token counts and finish reason; `StreamResult` reads both. The return
        value keeps `"".join(gen.stream(request))` working for callers that only want the text.
        The default yields the whole answer at once."""
        gen = self.generate(request)
        yield gen.text
        return gen

    def close(self) -> None:
        pass


class StreamResult:
    """Iterates the text pieces of a `Generator.stream` and keeps its final `Generation`:

        result = StreamResult(generator.stream(request))
        for piece in result: ...
        result.generation          # token counts and finish reason (None for a backend that returns none)
    """

    def __init__(self, pieces: Iterable[str]):
        self._it = iter(pieces)
        self.generation: Generation | None = None

    def __iter__(self):
        return self

    def __next__(self) -> str:
        try:
            return next(self._it)
        except StopIteration as stop:
            self.generation = stop.value if isinstance(stop.value, Generation) else None
            raise

    def close(self) -> None:
        """Stop the backend's stream (a client went away): its `finally` cancels the generation."""
        close = getattr(self._it, "close", None)
        if close is not None:
            close()
