"""What loading a source produces: a `SourceDocument`, or a `QuarantineItem` with a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class SourceDocument:
    doc_id: str
    source: str  # relative to the ingest root: the document's path, or "<file>.jsonl:<line>" for a record
    text: str
    event_time: datetime
    metadata: dict = field(default_factory=dict)
    # Whether event_time came from the document itself (it then counts as content for change detection)
    event_time_explicit: bool = False
    fields: dict = field(default_factory=dict)  # extra typed fields of a record (question, answer, ...)
    path: str = ""  # the file (and line) as given, for messages and quarantine rows; never stored with the data
    file: str | None = None  # a record's JSONL file, relative to the ingest root


@dataclass
class QuarantineItem:
    source: str  # the path as given (with ":LINE" for a JSONL record)
    # one of: empty, binary, undecodable, over-size, unparseable, bad-record, unsupported-type, duplicate-id,
    # unreadable, broken-symlink, symlink-loop, duplicate-dir, not-a-regular-file
    reason: str
    detail: str = ""
    raw: str = ""  # the offending record (truncated), for JSONL lines
    doc_id: str | None = None  # when known: a bad new version of a stored document must not delete it
    # What this run could not read, relative to the ingest root, so --sync keeps what was stored from it:
    file: str | None = None  # a JSONL file with a bad line (or bad as a whole): all its stored records
    prefix: str | None = None  # an unreadable directory ("sub/"; "" for the root): everything under it
