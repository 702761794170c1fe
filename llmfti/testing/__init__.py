"""Test doubles shipped with the library: use them in your own tests too.

- `HashEmbedder`: deterministic bag-of-words hashing embedder (no model files, instant).
"""

from llmfti.models.hash_embedder import HashEmbedder

__all__ = ["HashEmbedder"]
