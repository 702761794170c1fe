"""Discover source files and load them into `SourceDocument`s; anything bad becomes a
`QuarantineItem` with a reason instead of stopping the run.

Supported: .md .markdown .txt .rst .html .htm .pdf .jsonl. Directories recurse (hidden entries are
skipped), globs expand. A document's id is its path relative to the directory it was found under
(or its file name), so the same corpus gets the same ids from any working directory. JSONL records
use their `id` field, else `<file>#<hash of text>`.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from llmfti.errors import ConfigError
from llmfti.hashing import sha256_text
from llmfti.sources.formats import UnparseableError, html_to_text, pdf_to_text, rst_to_markdown, split_front_matter
from llmfti.sources.timeparse import parse_time

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".rst"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | {".html", ".htm", ".pdf", ".jsonl"}
EVENT_TIME_KEYS = ("event_time", "date", "published", "updated", "created")


@dataclass
class SourceDocument:
    doc_id: str
    source: str
    text: str
    event_time: datetime
    metadata: dict = field(default_factory=dict)
    # Whether event_time came from the document itself (it then counts as content for change detection)
    event_time_explicit: bool = False
    fields: dict = field(default_factory=dict)  # extra typed fields of a record (question, answer, ...)


@dataclass
class QuarantineItem:
    source: str
    reason: str  # one of: empty, binary, undecodable, over-size, unparseable, bad-record, unsupported-type, duplicate-id
    detail: str = ""
    raw: str = ""  # the offending record (truncated), for JSONL lines
    doc_id: str | None = None  # when known: a bad new version of a stored document must not delete it


def discover_files(paths: list[str]) -> list[tuple[Path, Path]]:
    """(root, file) pairs for every file under the given paths, globs expanded, sorted for determinism.
    A path that does not exist (and matches no glob) is a usage error, raised before any work."""
    found: list[tuple[Path, Path]] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.exists():
            matches = [p]
        elif any(c in raw for c in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(str(p), recursive=True))]
            if not matches:
                raise ConfigError(f"no files match {raw!r}")
        else:
            raise ConfigError(f"source not found: {raw}")
        for m in matches:
            if m.is_dir():
                for f in sorted(m.rglob("*")):
                    rel = f.relative_to(m)
                    if f.is_file() and not any(part.startswith(".") for part in rel.parts):
                        found.append((m, f))
            elif m.is_file():
                found.append((m.parent, m))
    return found


def _event_time(meta: dict, fallback: datetime) -> tuple[datetime, bool]:
    for key in EVENT_TIME_KEYS:
        if meta.get(key) not in (None, ""):
            return parse_time(meta[key]), True
    return fallback, False


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise _Bad("binary", "contains NUL bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Bad("undecodable", f"not valid UTF-8 at byte {exc.start}") from None


class _Bad(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _load_file(root: Path, path: Path, max_bytes: int) -> SourceDocument:
    size = path.stat().st_size
    if size > max_bytes:
        raise _Bad("over-size", f"{size} bytes > max_file_bytes {max_bytes}")
    data = path.read_bytes()
    if not data.strip():
        raise _Bad("empty", "file is empty")
    suffix = path.suffix.lower()
    meta: dict = {}
    try:
        if suffix == ".pdf":
            text, meta = pdf_to_text(data)
        else:
            text = _decode(data)
            if suffix in (".html", ".htm"):
                text, meta = html_to_text(text)
            elif suffix in (".md", ".markdown"):
                text, meta = split_front_matter(text)
            elif suffix == ".rst":
                text = rst_to_markdown(text)
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
        event_time, explicit = _event_time(meta, mtime)
    except UnparseableError as exc:
        raise _Bad("unparseable", str(exc)) from None
    except ValueError as exc:
        raise _Bad("unparseable", f"bad date in metadata: {exc}") from None
    doc_id = path.relative_to(root).as_posix()
    meta = {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in meta.items()}
    return SourceDocument(doc_id, str(path), text, event_time, meta, explicit)


def _check_record(obj, required: dict[str, tuple]) -> None:
    if not isinstance(obj, dict):
        raise _Bad("bad-record", "a record must be a JSON object")
    for name, alternatives in required.items():
        present = [a for a in alternatives if a in obj]
        if not present:
            raise _Bad("bad-record", f"missing field {name!r}" + (f" (or {', '.join(alternatives[1:])})" if len(alternatives) > 1 else ""))
        value = obj[present[0]]
        if not isinstance(value, str) or not value.strip():
            raise _Bad("bad-record", f"field {present[0]!r} must be a non-empty string")
    if "metadata" in obj and not isinstance(obj["metadata"], dict):
        raise _Bad("bad-record", "field 'metadata' must be an object")
    if "id" in obj and not isinstance(obj["id"], (str, int)):
        raise _Bad("bad-record", "field 'id' must be a string or an integer")


DOCUMENT_FIELDS = {"text": ("text",)}
RECORD_FIELDS = {"question": ("question", "instruction"), "answer": ("answer",)}


def _load_jsonl(root: Path, path: Path, max_bytes: int, kind: str) -> Iterator[SourceDocument | QuarantineItem]:
    size = path.stat().st_size
    if size > max_bytes:
        yield QuarantineItem(str(path), "over-size", f"{size} bytes > max_file_bytes {max_bytes}")
        return
    try:
        content = _decode(path.read_bytes())
    except _Bad as bad:
        yield QuarantineItem(str(path), bad.reason, bad.detail)
        return
    rel = path.relative_to(root).as_posix()
    required = RECORD_FIELDS if kind == "records" else DOCUMENT_FIELDS
    mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    seen_any = False
    for lineno, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        seen_any = True
        where = f"{path}:{lineno}"
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _Bad("bad-record", f"invalid JSON: {exc.msg} at column {exc.colno}") from None
            _check_record(obj, required)
            meta = obj.get("metadata") or {}
            try:
                event_time, explicit = _event_time({"event_time": obj.get("event_time")}, mtime)
            except (ValueError, TypeError, OverflowError) as exc:
                raise _Bad("bad-record", f"bad event_time {obj.get('event_time')!r}: {exc}") from None
            if kind == "records":
                question = obj.get("question", obj.get("instruction"))
                fields = {"question": question, "answer": obj["answer"], "context_ids": obj.get("context_ids") or []}
                if not isinstance(fields["context_ids"], list) or not all(isinstance(c, str) for c in fields["context_ids"]):
                    raise _Bad("bad-record", "field 'context_ids' must be a list of strings")
                text = question + "\n\n" + obj["answer"]
            else:
                fields, text = {}, obj["text"]
            doc_id = str(obj["id"]) if "id" in obj else f"{rel}#{sha256_text(text)[:12]}"
            yield SourceDocument(doc_id, where, text, event_time, meta, explicit, fields)
        except _Bad as bad:
            yield QuarantineItem(where, bad.reason, bad.detail, raw=line[:2000])
    if not seen_any:
        yield QuarantineItem(str(path), "empty", "no records")


def load_sources(paths: list[str], *, max_file_bytes: int, kind: str = "documents") -> Iterator[SourceDocument | QuarantineItem]:
    """Yield a document or a quarantine item for every file (and JSONL line) found under `paths`."""
    seen: dict[str, str] = {}
    for root, path in discover_files(paths):
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            yield QuarantineItem(str(path), "unsupported-type", f"{suffix or 'no extension'} is not one of {', '.join(sorted(SUPPORTED_SUFFIXES))}")
            continue
        if kind == "records" and suffix != ".jsonl":
            yield QuarantineItem(str(path), "unsupported-type", "records feature groups read .jsonl only")
            continue
        if suffix == ".jsonl":
            items = _load_jsonl(root, path, max_file_bytes, kind)
        else:
            doc_id = path.relative_to(root).as_posix()
            try:
                items = iter([_load_file(root, path, max_file_bytes)])
            except _Bad as bad:
                items = iter([QuarantineItem(str(path), bad.reason, bad.detail, doc_id=doc_id)])
            except OSError as exc:
                items = iter([QuarantineItem(str(path), "unreadable", str(exc), doc_id=doc_id)])
        for item in items:
            if isinstance(item, SourceDocument):
                if item.doc_id in seen:
                    item = QuarantineItem(item.source, "duplicate-id", f"doc id {item.doc_id!r} already read from {seen[item.doc_id]}")
                else:
                    seen[item.doc_id] = item.source
            yield item
