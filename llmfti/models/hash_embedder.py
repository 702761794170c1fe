"""A deterministic hashing embedder (`hash-<dim>`): texts that share words get similar vectors.

A real embedder with no model files, so feature groups written with it can be read back in any
process; tests use it (re-exported by `llmfti.testing`) because it is instant.

It has its own word-level tokenizer so chunking works without model files. Vectors are
reproducible across processes and machines (blake2b, not Python's salted hash()).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from llmfti.models.embedder import Embedder

_TOKEN = re.compile(r"\w+|[^\w\s]")


class HashEmbedder(Embedder):
    def __init__(self, dim: int = 64):
        if dim < 2:
            raise ValueError("dim must be >= 2")
        self._dim = dim
        self.id = f"hash-{dim}"
        self.dtype = "float32"

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def fingerprint(self) -> str:
        return f"hash-embedder-v1-{self._dim}"

    @property
    def tokenizer_fingerprint(self) -> str:
        return "hash-tokenizer-v1"

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _TOKEN.finditer(text)]

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self._dim, dtype=np.float32)
        vec[0] = 1e-3  # keeps the vector of an empty text well defined
        for m in _TOKEN.finditer(text.lower()):
            digest = hashlib.blake2b(m.group().encode(), digest_size=8).digest()
            slot = int.from_bytes(digest[:4], "little") % self._dim
            vec[slot] += 1.0 if digest[4] & 1 else -1.0
        return vec / np.linalg.norm(vec)

    def _encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts])
