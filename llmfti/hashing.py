"""Content hashes used for fingerprints, artifact hashes and stable ids."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

_RACY_NS = 3_000_000_000  # files changed this recently are not remembered


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


def sha256_file_memo(path: str | Path) -> str:
    """`sha256_file`, remembered per file state: a digest made once is kept under the user's cache
    (`$LLMFTI_CACHE_DIR`, default ~/.cache/llmfti, `file-sha256/`) keyed by the file's path, inode, size,
    modification and change times, as git's index remembers what it hashed. Writing the file, replacing
    it, or resetting its mtime (which sets the POSIX change time, which no user can set) makes a new key.
    For fingerprints that every run checks (an embedder's 90 MB of weights: ~60 ms of each cold start);
    an integrity check (`llmfti.registry.verify`) hashes the bytes every time."""
    path = Path(path)
    st = path.stat()
    key = sha256_text(str(path.resolve()), str(st.st_ino), str(st.st_size), str(st.st_mtime_ns), str(st.st_ctime_ns))
    memo = Path(os.environ.get("LLMFTI_CACHE_DIR") or Path.home() / ".cache" / "llmfti").expanduser() / "file-sha256" / key
    try:
        digest = memo.read_text().strip()
        if len(digest) == 64:
            return digest
    except OSError:
        pass
    digest = sha256_file(path)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _RACY_NS:
        # Changed within the last seconds: a rewrite in the same timestamp tick (coarse on some file
        # systems) would keep the key, so a file this fresh is hashed again next time (git's "racy" rule).
        return digest
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(digest)
        os.replace(tmp, memo)
    except OSError:
        pass  # a read-only cache: hash every time, as before
    return digest


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
