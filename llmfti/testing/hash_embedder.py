"""The deterministic hashing embedder, under its test-double name (it lives in `llmfti.models`)."""

from llmfti.models.hash_embedder import HashEmbedder

__all__ = ["HashEmbedder"]
