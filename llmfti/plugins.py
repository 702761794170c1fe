"""One registration mechanism for extensions (peft's `register_peft_method` idea): chunkers,
on-demand transformations and agent tools register in one call, exactly like the built-ins.

    CHUNKERS = Registry("chunker", builtins="llmfti.transforms.model_independent.chunk")

    @CHUNKERS.register("my-chunker")
    def make(config, token_offsets, tokenizer_fingerprint): ...
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from llmfti.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, builtins: str | None = None):
        self.kind = kind
        self._builtins = builtins  # module whose import registers the built-ins (imported on first lookup)
        self._items: dict[str, T] = {}
        self._loading = False

    def add(self, name: str, item: T) -> T:
        """Register `item`; replacing a name (a built-in included) is allowed and deliberate."""
        if name not in self._items:
            self._load()  # built-ins first, so they can never silently overwrite a user's entry later
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`; returns the object unchanged."""
        return lambda item: self.add(name, item)

    def _load(self) -> None:
        if self._builtins and not self._loading:
            self._loading = True  # the built-ins' own add() calls must not recurse into this import
            importlib.import_module(self._builtins)

    def get(self, name: str) -> T:
        self._load()
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(self._items)) or 'none'}")
        return self._items[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)
