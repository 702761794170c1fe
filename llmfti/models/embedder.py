"""The embedder interface: text -> normalised float32 vectors, plus the tokenizer that chunking counts
with and a fingerprint of the vectors it produces. Implementations: `embedders.SentenceTransformerEmbedder`,
`hash_embedder.HashEmbedder`; `embedders.load_embedder` picks one from a config."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import numpy as np

ProgressFn = Callable[[int], None]


class Embedder(ABC):
    """Model-independent transformation: chunk text -> vector. Subclasses load lazily in warm_up()."""

    id: str
    dtype: str = "float32"

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @property
    @abstractmethod
    def fingerprint(self) -> str: ...

    @property
    @abstractmethod
    def tokenizer_fingerprint(self) -> str: ...

    @abstractmethod
    def token_offsets(self, text: str) -> list[tuple[int, int]]: ...

    def warm_up(self) -> None:
        """Load weights; called once before the first embed()."""

    @abstractmethod
    def _encode(self, texts: list[str]) -> np.ndarray:
        """Encode one batch (embed() slices and orders the input)."""

    def batch_lengths(self, texts: list[str]) -> list[int]:
        """What a text costs in a batch, for ordering: its length in characters here; embedders that
        have a tokenizer count the tokens the model will see (a batch pads to its longest)."""
        return [len(t) for t in texts]

    def batch_order(self, texts: list[str]) -> list[int]:
        """Indices of `texts` longest first by `batch_lengths` (ties: more characters first, then input
        order), the order `embed` cuts its batches from. Deterministic, so a re-run makes the same batches."""
        lengths = self.batch_lengths(texts)
        return sorted(range(len(texts)), key=lambda i: (-lengths[i], -len(texts[i]), i))

    def embed(self, texts: list[str], batch_size: int = 64, progress: ProgressFn | None = None) -> np.ndarray:
        """Normalised float32 vectors in input order. Texts are sorted longest-first (`batch_order`)
        and encoded one batch of `batch_size` per `_encode` call, so each batch pads only to its own
        longest text and progress is reported per batch. (A forward pass over a larger slice padded
        everything to the slice's longest text and ran attention over it: 1.8x slower on CPU in bf16.)"""
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # One batch (a query, a small re-ingest): its order cannot change the padding, skip counting tokens.
        order = self.batch_order(texts) if len(texts) > batch_size else sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        step = max(1, batch_size)
        for start in range(0, len(order), step):
            idx = order[start : start + step]
            out[idx] = self._encode([texts[i] for i in idx])
            if progress:
                progress(len(idx))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def describe(self) -> dict:
        return {"id": self.id, "dimension": self.dimension, "dtype": self.dtype, "fingerprint": self.fingerprint}
