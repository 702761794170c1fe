"""Stream sources: messages from Kafka (confluent-kafka), or a replay of past messages from a JSONL
file, turned into feature-pipeline items (`SourceDocument`s, quarantine items, deletes).

    consumer = KafkaSource("broker:9092", "questions", group_id="llmfti-qa")
    consumer.start({0: 1200, 1: 988})          # next offset per partition (missing: from the beginning)
    messages = consumer.poll(500, timeout_s=1.0)
    items, deletes = message_items(messages, kind="records")

A message value is one JSON object, exactly like a line of a JSONL file of that kind (documents:
`text`; records: `question`/`instruction` + `answer`; optional `id`, `event_time`, `metadata`,
`context_ids`). The message key is the record id when the value has none, so a later message with
the same key replaces the record; a message with a key and no value (a tombstone) deletes it. A bad
message is quarantined with its partition and offset and never stops the others.

Where the offsets are kept (in the feature-group commit itself) is the pipeline's business:
`llmfti.pipelines.stream`. Offsets given to `start` are positions, i.e. the next offset to read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Protocol

from llmfti.errors import ConfigError
from llmfti.sources.items import QuarantineItem, SourceDocument


@dataclass(frozen=True)
class StreamMessage:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | str | None  # None: a tombstone
    timestamp_ms: int | None = None

    @property
    def where(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


class StreamConsumer(Protocol):
    """What the stream pipeline needs from a source: start at given positions, poll batches, close."""

    name: str  # identifies the source in the stored offsets: its full identity (servers + topic, resolved path)

    def start(self, positions: dict[int, int]) -> None: ...

    def poll(self, max_messages: int, timeout_s: float) -> list[StreamMessage]: ...

    def close(self) -> None: ...


class KafkaSource:
    """A confluent-kafka consumer on one topic. Kafka's own committed group offsets are never used
    to resume (`enable.auto.commit` off): the positions come from the feature group, so data and
    offsets cannot disagree. `consumer_factory(config)` defaults to `confluent_kafka.Consumer`."""

    def __init__(self, bootstrap_servers: str, topic: str, *, group_id: str = "llmfti", config: dict | None = None,
                 consumer_factory: Callable[[dict], object] | None = None, source_id: str | None = None):
        self.topic = topic
        # Two clusters may each have a topic of this name: the offsets are the cluster's AND the topic's.
        servers = ",".join(sorted(s.strip() for s in bootstrap_servers.split(",") if s.strip()))
        self.name = source_id or f"kafka:{servers}/{topic}"
        self.legacy_name = None if source_id else f"kafka:{topic}"  # how offsets were keyed before (ambiguous)
        self.config = {"bootstrap.servers": bootstrap_servers, "group.id": group_id, "enable.auto.commit": False,
                       "auto.offset.reset": "earliest", **(config or {})}
        self._factory = consumer_factory
        self._consumer = None

    def start(self, positions: dict[int, int]) -> None:
        try:
            import confluent_kafka
        except ImportError:
            raise ConfigError("reading Kafka needs confluent-kafka: pip install 'llmfti[stream]'") from None
        factory = self._factory or confluent_kafka.Consumer
        self._consumer = factory(self.config)

        def on_assign(consumer, partitions):
            # Resume exactly where the last commit of the feature group ended, whatever the group thinks.
            for tp in partitions:
                tp.offset = positions.get(tp.partition, confluent_kafka.OFFSET_BEGINNING)
            consumer.assign(partitions)

        self._consumer.subscribe([self.topic], on_assign=on_assign)

    def poll(self, max_messages: int, timeout_s: float) -> list[StreamMessage]:
        out = []
        for m in self._consumer.consume(num_messages=max_messages, timeout=timeout_s) or []:
            error = m.error() if callable(getattr(m, "error", None)) else None
            if error is not None:
                if getattr(error, "fatal", lambda: False)():
                    raise ConfigError(f"kafka consumer failed: {error}")
                continue  # partition EOF and transient errors: the client retries
            key = m.key()
            ts = m.timestamp()[1] if callable(getattr(m, "timestamp", None)) else None
            out.append(StreamMessage(m.topic(), int(m.partition()), int(m.offset()), key.decode() if isinstance(key, bytes) else key,
                                     m.value(), ts if ts and ts > 0 else None))
        return out

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class JsonlReplay:
    """Past messages from a JSONL file, one message per line (partition 0, offset = line number - 1):
    a backfill runs through the same micro-batches, offsets and resumption as the live stream. A line
    `{"key": K, "value": null}` is a tombstone; `{"key": K, "value": {...}}` a keyed message; any other
    object is the value itself."""

    def __init__(self, path: str | Path, *, source_id: str | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"no such file to replay: {path}")
        # The resolved path, not the file name: jan/history.jsonl and feb/history.jsonl are two sources.
        self.name = source_id or f"replay:{self.path.resolve()}"
        self.legacy_name = None if source_id else f"replay:{self.path.name}"  # how offsets were keyed before (ambiguous)
        self._lines: list[bytes] = []
        self._next = 0

    def start(self, positions: dict[int, int]) -> None:
        # Bytes, decoded line by line: one line of bad UTF-8 is one quarantined message, not a failed backfill.
        self._lines = self.path.read_bytes().split(b"\n")
        self._next = positions.get(0, 0)

    def poll(self, max_messages: int, timeout_s: float) -> list[StreamMessage]:
        out = []
        while self._next < len(self._lines) and len(out) < max_messages:
            offset, raw = self._next, self._lines[self._next]
            self._next += 1
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                out.append(StreamMessage(self.name, 0, offset, None, raw))  # quarantined by message_items, with its offset
                continue
            key, value = None, line
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = None  # quarantined by message_items, with its offset
            if isinstance(obj, dict) and set(obj) <= {"key", "value"} and "value" in obj:
                key, value = obj.get("key"), None if obj["value"] is None else json.dumps(obj["value"])
                key = key if key is None or isinstance(key, str) else json.dumps(key)  # normalised by message_items
            out.append(StreamMessage(self.name, 0, offset, key, value))
        return out

    def close(self) -> None:
        self._lines = []


class BadKey(ValueError):
    pass


def record_key(key) -> str | None:
    """A message key as a record id, the same way for a keyed message and its tombstone: None stays None
    (no key), an integer key 5 (or the JSON text "5") is the id "5"; an empty key, or one that is not a
    string or an integer, cannot name a record (BadKey)."""
    if key is None:
        return None
    if isinstance(key, bytes):
        key = key.decode("utf-8", errors="strict")
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise BadKey(f"a message key must be a string or an integer, not {type(key).__name__}")
    text = str(key).strip()
    if text.startswith(("{", "[", "\"")) or text in ("true", "false", "null"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if isinstance(value, bool) or value is None or not isinstance(value, (str, int)):
            raise BadKey(f"a message key must be a string or an integer, not {text[:40]!r}")
        text = str(value).strip()
    if not text:
        raise BadKey("an empty message key cannot name a record")
    return text


def message_items(messages: list[StreamMessage], kind: str = "records") -> tuple[list[SourceDocument | QuarantineItem], list[str]]:
    """(documents and quarantine items, doc ids to delete) for a batch. Within a batch the last
    message of an id wins, so an update followed by a tombstone deletes, and vice versa."""
    # The JSONL loader's parsing, so a message and a JSONL line of the same kind mean the same record.
    from llmfti.sources.loaders import DOCUMENT_FIELDS, REQUIRED_FIELDS, BadRecord, parse_record, record_document

    required = REQUIRED_FIELDS.get(kind, DOCUMENT_FIELDS)
    latest: dict[str, SourceDocument | None] = {}  # id -> document, None for a delete
    bad: list[QuarantineItem] = []
    for m in sorted(messages, key=lambda m: (m.partition, m.offset)):
        where = f"{m.topic}/{m.partition}@{m.offset}"
        try:
            key = record_key(m.key)
        except (BadKey, UnicodeDecodeError) as exc:
            bad.append(QuarantineItem(where, "bad-key", str(exc)))
            continue
        if m.value is None:
            if key is not None:
                latest.pop(key, None)
                latest[key] = None
            continue
        try:
            line = m.value.decode("utf-8") if isinstance(m.value, bytes) else str(m.value)
        except UnicodeDecodeError as exc:
            bad.append(QuarantineItem(where, "undecodable", str(exc)))
            continue
        try:
            obj = parse_record(line, required)
            if "id" not in obj and key is not None:
                obj["id"] = key
            when = datetime.fromtimestamp(m.timestamp_ms / 1000, tz=timezone.utc) if m.timestamp_ms else datetime.now(timezone.utc)
            doc = record_document(obj, f"{m.topic}/{m.partition}", m.offset, where, when, kind)
        except BadRecord as exc:
            bad.append(QuarantineItem(where, exc.reason, exc.detail, raw=line[:2000], doc_id=key))
            continue
        latest.pop(doc.doc_id, None)  # re-insert: the order of the last message of each id
        latest[doc.doc_id] = doc
    items: list[SourceDocument | QuarantineItem] = [d for d in latest.values() if d is not None]
    deletes = [doc_id for doc_id, d in latest.items() if d is None]
    return items + bad, deletes
