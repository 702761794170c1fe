"""llmfti: LLM and RAG systems on the feature/training/inference (FTI) architecture.

Importing this package is cheap on purpose: heavy libraries (torch, transformers, lancedb) load
lazily where they are used, so `import llmfti` and `llmfti --help` stay fast.

    from llmfti import FeatureStore
    fg = FeatureStore("./.llmfti").feature_group("docs", version=1)
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "FeatureStore": ("llmfti.store.feature_store", "FeatureStore"),
    "FeatureGroup": ("llmfti.store.feature_group", "FeatureGroup"),
    "ProjectHome": ("llmfti.home", "ProjectHome"),
    "ModelRegistry": ("llmfti.registry", "ModelRegistry"),
    "LlmftiError": ("llmfti.errors", "LlmftiError"),
}


def __getattr__(name: str):
    # PEP 562 lazy attribute access keeps the import graph light until something is used.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'llmfti' has no attribute {name!r}")


__all__ = sorted(_LAZY) + ["__version__"]
