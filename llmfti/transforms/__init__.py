"""The three kinds of transformation, declared as such (DESIGN.md point 2).

- `model_independent`: clean, chunk, embed. Run by feature pipelines; outputs are stored and reused.
- `model_dependent`: prompt + chat template + tokenizer + budget. One implementation for training and serving.
- `on_demand`: request-time functions, also runnable by feature pipelines for backfill.

Extensions register the same way as the built-ins (`register_chunker`).
"""

from llmfti.transforms.registry import get_chunker, list_chunkers, register_chunker

__all__ = ["get_chunker", "list_chunkers", "register_chunker"]
