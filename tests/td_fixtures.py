"""Helpers for training-dataset tests: Q&A records as JSONL, a records feature group (hash embedder),
a documents feature group, and a tiny chat model (ChatML tokenizer) registered as base model 'tiny'."""

from __future__ import annotations

import json
from pathlib import Path

from llmfti.pipelines.feature import ingest as run_ingest

QA = [
    ("q-with", "What does the with statement do?", "It wraps a block with a context manager [1].", "2024-01-05"),
    ("q-exit", "Does __exit__ always run?", "Yes, __exit__ always runs [1].", "2024-01-10"),
    ("q-for", "What does a for loop iterate over?", "An iterable [1].", "2024-01-20"),
    ("q-while", "When does a while loop repeat?", "While a condition holds [1].", "2024-02-01"),
    ("q-gen", "What do generators do?", "They yield values lazily [1].", "2024-02-10"),
    ("q-state", "Do generators keep state?", "Yes, between calls [1].", "2024-02-20"),
]


def qa_rows(items=QA, **extra) -> list[dict]:
    return [{"id": i, "question": q, "answer": a, "event_time": t, **extra.get(i, {})} for i, q, a, t in items]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def records_config():
    from llmfti.config import FeatureConfig

    return FeatureConfig(kind="records", embedder={"model": "hash-64"})


def ingest_records(store, path: Path, name: str = "qa"):
    fg = store.feature_group(name, must_exist=False)
    summary = run_ingest(fg, [str(path)], config=records_config())
    return store.feature_group(name), summary


def ingest_docs(store, corpus: Path, config, name: str = "docs"):
    fg = store.feature_group(name, must_exist=False)
    run_ingest(fg, [str(corpus)], config=config)
    return store.feature_group(name)


def tiny_chat_model(folder: Path) -> Path:
    """A tiny Llama + ChatML tokenizer that learns in a few steps (initializer_range=0.2)."""
    from llmfti.testing.tiny_models import save_tiny_model

    if not (folder / "config.json").is_file():
        save_tiny_model(folder, initializer_range=0.2)
    return folder


def import_tiny(home, folder: Path, name: str = "tiny") -> str:
    from llmfti.registry import ModelRegistry

    ModelRegistry(home).import_base_model(str(folder), name)
    return name
