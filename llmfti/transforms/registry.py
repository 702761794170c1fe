"""Chunker registration: the built-in `structured` chunker registers exactly like an extension.

    @register_chunker("my-chunker")
    def make(config: ChunkerConfig, token_offsets, tokenizer_fingerprint: str) -> Chunker: ...
"""

from __future__ import annotations

from llmfti.plugins import Registry

CHUNKERS: Registry = Registry("chunker", builtins="llmfti.transforms.model_independent.chunk")
register_chunker = CHUNKERS.register
get_chunker = CHUNKERS.get
list_chunkers = CHUNKERS.names
