"""Shared fixtures: a temporary project home and small corpora, with the deterministic hash embedder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("LLMFTI_HOME", str(h))
    return h


@pytest.fixture
def store(home):
    from llmfti.store import FeatureStore

    return FeatureStore(home)


@pytest.fixture
def hash_config():
    from llmfti.config import FeatureConfig

    return FeatureConfig(embedder={"model": "hash-64"}, chunker={"chunk_tokens": 40, "overlap": 8})


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    write(root / "with.md", "# The with statement\n\nThe with statement wraps a block with a context manager.\n\n## Exit\n\nThe __exit__ method always runs.\n")
    write(root / "loops.md", "---\ndate: 2024-03-01\nauthor: guido\n---\n# Loops\n\nA for loop iterates over an iterable. A while loop repeats while a condition holds.\n")
    write(root / "sub" / "gen.txt", "Generators yield values lazily, one at a time, and keep their state between calls.\n")
    return root


def load_bench(name: str):
    """A benchmark script under bench/ as a module (bench/ is not a package): its helpers are tested."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).resolve().parents[1] / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
