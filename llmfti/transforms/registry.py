"""One-call registration of transformations, the built-ins registered exactly like extensions.

    @register_chunker("my-chunker")
    def make(config: ChunkerConfig, tokenizer: TokenCounter) -> Chunker: ...
"""

from __future__ import annotations

from typing import Callable

_CHUNKERS: dict[str, Callable] = {}


def register_chunker(name: str):
    """Decorator: register a chunker factory `(ChunkerConfig, TokenOffsets) -> Chunker` under `name`."""

    def decorate(factory: Callable) -> Callable:
        _CHUNKERS[name] = factory
        return factory

    return decorate


def _load_builtins() -> None:
    # Importing the module runs its @register_chunker decorators.
    import llmfti.transforms.model_independent.chunk  # noqa: F401


def get_chunker(name: str) -> Callable:
    _load_builtins()
    if name not in _CHUNKERS:
        from llmfti.errors import ConfigError

        raise ConfigError(f"unknown chunker {name!r}; registered: {', '.join(sorted(_CHUNKERS))}")
    return _CHUNKERS[name]


def list_chunkers() -> list[str]:
    _load_builtins()
    return sorted(_CHUNKERS)
