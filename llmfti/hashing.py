"""Content hashes used for fingerprints, artifact hashes and stable ids."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def sha256_text(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\0")  # separator: ("ab","c") and ("a","bc") must differ
    return h.hexdigest()


def sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def sha256_files(root: str | Path, names: list[str] | None = None) -> str:
    """Hash of the named files (or every file) under `root`, by relative path and content."""
    root = Path(root)
    files = sorted(root.rglob("*")) if names is None else [root / n for n in sorted(names)]
    h = hashlib.sha256()
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(root).as_posix()).encode() + b"\0")
            h.update(sha256_file(f).encode() + b"\0")
    return h.hexdigest()
