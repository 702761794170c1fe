"""Discover source files and load them into `SourceDocument`s; anything bad becomes a
`QuarantineItem` with a reason instead of stopping the run.

Supported: .md .markdown .txt .rst .html .htm .pdf .jsonl. Directories recurse (hidden entries are
skipped), globs expand. A document's id is its path relative to the directory it was found under
(or its file name), so the same corpus gets the same ids from any working directory. JSONL records
use their `id` field, else `<file>#<hash of text>`. A document's `source` is relative the same way
(`<file>:<line>` for JSONL records): it is stored and shown in citations, so it never holds a
server path. Quarantine items keep the path as given, for the operator. Records (question, answer)
and preference pairs (prompt or question, chosen, rejected; both kinds with optional context_ids,
event_time, metadata) are read from JSONL only.

Discovery (`llmfti.sources.discovery`) reports unreadable directories, broken symlinks, loops and
FIFOs as quarantine items instead of skipping them.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from llmfti.hashing import sha256_text
from llmfti.sources.discovery import discover_files, file_type
from llmfti.sources.formats import UnparseableError, html_to_text, pdf_to_text, rst_to_markdown, split_front_matter
from llmfti.sources.items import QuarantineItem, SourceDocument
from llmfti.sources.timeparse import TimeOutOfRange, parse_time

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".rst"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | {".html", ".htm", ".pdf", ".jsonl"}
EVENT_TIME_KEYS = ("event_time", "date", "published", "updated", "created")
# Metadata is copied onto every chunk of a document: a bound keeps one file from bloating the table.
MAX_METADATA_BYTES = 64 * 1024


class BadRecord(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


# ---------------------------------------------------------------------------------------------- reading


def _read_regular(path: Path, max_bytes: int) -> tuple[bytes, float]:
    """The bytes and mtime of a regular file of at most `max_bytes`. Opened without blocking and checked
    once open, so a file swapped for a FIFO after discovery cannot hang the run. OSError: unreadable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise BadRecord("not-a-regular-file", file_type(st.st_mode))
        if st.st_size > max_bytes:
            raise BadRecord("over-size", f"{st.st_size} bytes > max_file_bytes {max_bytes}")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew while we read it
        raise BadRecord("over-size", f"more than max_file_bytes {max_bytes}")
    return data, st.st_mtime


def _event_time(meta: dict, fallback: datetime) -> tuple[datetime, bool]:
    for key in EVENT_TIME_KEYS:
        if meta.get(key) not in (None, ""):
            return parse_time(meta[key]), True
    return fallback, False


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise BadRecord("binary", "contains NUL bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRecord("undecodable", f"not valid UTF-8 at byte {exc.start}") from None


def _flat_metadata(meta: dict, reason: str) -> dict:
    """Scalars as they are, anything else as its string; keys as strings (mixed key types cannot be
    sorted when hashed). Refused as `reason` past MAX_METADATA_BYTES serialized."""
    flat = {str(k): (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in meta.items()}
    size = len(json.dumps(flat, sort_keys=True, default=str).encode())
    if size > MAX_METADATA_BYTES:
        raise BadRecord(reason, f"metadata is {size} bytes serialized > {MAX_METADATA_BYTES}")
    return flat


def _parse(data: bytes, suffix: str) -> tuple[str, dict]:
    """Text and metadata of one file's bytes, by its type."""
    if suffix == ".pdf":
        return pdf_to_text(data)
    text = _decode(data)
    if suffix in (".html", ".htm"):
        return html_to_text(text)
    if suffix in (".md", ".markdown"):
        return split_front_matter(text)
    if suffix == ".rst":
        return rst_to_markdown(text), {}
    return text, {}


def _load_file(root: Path, path: Path, max_bytes: int) -> SourceDocument:
    data, mtime = _read_regular(path, max_bytes)
    if not data.strip():
        raise BadRecord("empty", "file is empty")
    try:
        text, meta = _parse(data, path.suffix.lower())
        event_time, explicit = _event_time(meta, datetime.fromtimestamp(mtime, tz=timezone.utc))
    except UnparseableError as exc:
        raise BadRecord("unparseable", str(exc)) from None
    except TimeOutOfRange as exc:
        raise BadRecord("unparseable", f"date in metadata out of range: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise BadRecord("unparseable", f"bad date in metadata: {exc}") from None
    doc_id = path.relative_to(root).as_posix()
    return SourceDocument(doc_id, doc_id, text, event_time, _flat_metadata(meta, "over-size"), explicit, path=str(path))


def _check_record(obj, required: dict[str, tuple]) -> None:
    if not isinstance(obj, dict):
        raise BadRecord("bad-record", "a record must be a JSON object")
    for name, alternatives in required.items():
        present = [a for a in alternatives if a in obj]
        if not present:
            raise BadRecord("bad-record", f"missing field {name!r}" + (f" (or {', '.join(alternatives[1:])})" if len(alternatives) > 1 else ""))
        value = obj[present[0]]
        if not isinstance(value, str) or not value.strip():
            raise BadRecord("bad-record", f"field {present[0]!r} must be a non-empty string")
    if "metadata" in obj and not isinstance(obj["metadata"], dict):
        raise BadRecord("bad-record", "field 'metadata' must be an object")
    if "id" in obj and not isinstance(obj["id"], (str, int)):
        raise BadRecord("bad-record", "field 'id' must be a string or an integer")


DOCUMENT_FIELDS = {"text": ("text",)}
RECORD_FIELDS = {"question": ("question", "instruction"), "answer": ("answer",)}
# Preference pairs: the prompt's question and two answers, the preferred one first.
PREFERENCE_FIELDS = {"prompt": ("prompt", "question"), "chosen": ("chosen",), "rejected": ("rejected",)}
REQUIRED_FIELDS = {"documents": DOCUMENT_FIELDS, "records": RECORD_FIELDS, "preferences": PREFERENCE_FIELDS}


def parse_record(line: str, required: dict[str, tuple]) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadRecord("bad-record", f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:  # `[[[[...` nested past the interpreter's limit
        raise BadRecord("bad-record", "invalid JSON: nested too deeply") from None
    _check_record(obj, required)
    return obj


def record_document(obj: dict, rel: str, lineno: int, where: str, mtime: datetime, kind: str) -> SourceDocument:
    meta = _flat_metadata(obj.get("metadata") or {}, "bad-record")
    try:
        event_time, explicit = _event_time({"event_time": obj.get("event_time")}, mtime)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRecord("bad-record", f"bad event_time {obj.get('event_time')!r}: {exc}") from None
    if kind == "records":
        question = obj.get("question", obj.get("instruction"))
        fields = {"question": question, "answer": obj["answer"], "context_ids": obj.get("context_ids") or []}
        text = question + "\n\n" + obj["answer"]
    elif kind == "preferences":
        question = obj.get("prompt", obj.get("question"))
        fields = {"question": question, "chosen": obj["chosen"], "rejected": obj["rejected"], "context_ids": obj.get("context_ids") or []}
        if fields["chosen"].strip() == fields["rejected"].strip():
            raise BadRecord("bad-record", "'chosen' and 'rejected' are the same answer: the pair prefers nothing")
        # The prompt is what retrieval and near-duplicate checks look at; both answers make the content hash.
        text = question + "\n\n" + obj["chosen"] + "\n\n" + obj["rejected"]
    else:
        fields, text = {}, obj["text"]
    if fields and (not isinstance(fields["context_ids"], list) or not all(isinstance(c, str) for c in fields["context_ids"])):
        raise BadRecord("bad-record", "field 'context_ids' must be a list of strings")
    doc_id = str(obj["id"]) if "id" in obj else f"{rel}#{sha256_text(text)[:12]}"
    return SourceDocument(doc_id, f"{rel}:{lineno}", text, event_time, meta, explicit, fields, path=where, file=rel)


def _load_jsonl(root: Path, path: Path, max_bytes: int, kind: str) -> Iterator[SourceDocument | QuarantineItem]:
    rel = path.relative_to(root).as_posix()
    try:
        data, mtime = _read_regular(path, max_bytes)
        content = _decode(data)
    except BadRecord as bad:
        yield QuarantineItem(str(path), bad.reason, bad.detail, file=rel)
        return
    except OSError as exc:  # unreadable, or gone since discovery
        yield QuarantineItem(str(path), "unreadable", exc.strerror or str(exc), file=rel)
        return
    required = REQUIRED_FIELDS.get(kind, DOCUMENT_FIELDS)
    mtime_dt = datetime.fromtimestamp(mtime, tz=timezone.utc)
    seen_any = False
    for lineno, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        seen_any = True
        where = f"{path}:{lineno}"
        try:
            yield record_document(parse_record(line, required), rel, lineno, where, mtime_dt, kind)
        except BadRecord as bad:
            yield QuarantineItem(where, bad.reason, bad.detail, raw=line[:2000], file=rel)
    if not seen_any:
        yield QuarantineItem(str(path), "empty", "no records", file=rel)


def load_file(root: Path, path: Path, max_file_bytes: int, kind: str) -> Iterator[SourceDocument | QuarantineItem]:
    """The documents or quarantine items of one discovered file."""
    suffix = path.suffix.lower()
    rel = path.relative_to(root).as_posix()
    if suffix not in SUPPORTED_SUFFIXES:
        yield QuarantineItem(str(path), "unsupported-type", f"{suffix or 'no extension'} is not one of {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    elif kind in ("records", "preferences") and suffix != ".jsonl":
        yield QuarantineItem(str(path), "unsupported-type", f"{kind} feature groups read .jsonl only")
    elif suffix == ".jsonl":
        yield from _load_jsonl(root, path, max_file_bytes, kind)
    else:
        try:
            yield _load_file(root, path, max_file_bytes)
        except BadRecord as bad:
            yield QuarantineItem(str(path), bad.reason, bad.detail, doc_id=rel)
        except OSError as exc:
            yield QuarantineItem(str(path), "unreadable", exc.strerror or str(exc), doc_id=rel)


def load_sources(paths: list[str], *, max_file_bytes: int, kind: str = "documents") -> Iterator[SourceDocument | QuarantineItem]:
    """Yield a document or a quarantine item for every file (and JSONL line) found under `paths`."""
    seen: dict[str, str] = {}
    for found in discover_files(paths):
        if isinstance(found, QuarantineItem):
            yield found
            continue
        for item in load_file(*found, max_file_bytes, kind):
            if isinstance(item, SourceDocument):
                if item.doc_id in seen:
                    item = QuarantineItem(item.path, "duplicate-id", f"doc id {item.doc_id!r} already read from {seen[item.doc_id]}", file=item.file)
                else:
                    seen[item.doc_id] = item.path
            yield item
