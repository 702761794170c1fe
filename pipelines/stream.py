"""The stream feature pipeline: micro-batches of messages -> feature-group commits, exactly once.

    from llmfti.pipelines.stream import stream_ingest
    from llmfti.sources.stream import KafkaSource, JsonlReplay
    stream_ingest(fg, KafkaSource("broker:9092", "questions"), kind="records")   # llmfti ingest kafka://broker:9092/questions ...
    stream_ingest(fg, JsonlReplay("history.jsonl"), until_idle=True)             # a backfill: the same code over past messages

Each micro-batch (up to `batch_size` messages) goes through the feature pipeline (`ingest_items`) as
ONE commit, and the partition positions it reached are stored IN THAT COMMIT (Lance transaction
properties, key `llmfti.stream.<source>`). A restart reads them back from the newest commit that has
them and resumes there, so every message is applied once: a crash before the commit re-reads the
batch (nothing of it was written), a crash after it resumes past it. Kafka's committed group
offsets are never trusted for this. A batch that changes nothing (re-delivered records whose
content is unchanged) makes no commit; its messages may be read again after a restart, and are
again skipped, since change detection compares content hashes.

The positions are also recorded with the ingest run (`_ingest_runs`), and the larger of the two is
used: maintenance may prune an old commit, never the run record.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

from llmfti.logs import get_logger

logger = get_logger(__name__)
PREFIX = "llmfti.stream."


def _key(source_name: str) -> str:
    return PREFIX + source_name


def stored_positions(fg, source_name: str) -> dict[int, int]:
    """The next offset to read per partition for `source_name`, from the feature group's commits
    (and its run records): where the last committed batch ended."""
    from llmfti.pipelines.feature_commit import commit_properties

    key = _key(source_name)
    found: list[dict] = []
    hit = commit_properties(fg, key)
    if hit is not None:
        found.append(json.loads(hit[1]))
    if fg.info:  # offsets-only run records exist before the first data commit (a first batch of bad messages)
        for run in fg.store.runs(fg.key):
            props = run["summary"].get("properties") or {}
            if key in props:
                found.append(json.loads(props[key]))
    positions: dict[int, int] = {}
    for entry in found:
        for partition, offset in entry.items():
            positions[int(partition)] = max(positions.get(int(partition), 0), int(offset))
    return positions


@dataclass
class StreamRun:
    source: str
    batches: int = 0
    commits: int = 0
    messages: int = 0
    positions: dict[int, int] = field(default_factory=dict)
    started_at: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"source": self.source, "batches": self.batches, "commits": self.commits, "messages": self.messages,
                "resumed_from": {str(k): v for k, v in self.started_at.items()}, "positions": {str(k): v for k, v in self.positions.items()}}


def stream_ingest(fg, consumer, *, config=None, embedder=None, batch_size: int = 500, poll_timeout_s: float = 1.0,
                  max_batches: int | None = None, until_idle: bool = False, stop_event: threading.Event | None = None,
                  on_batch: Callable[[object], None] | None = None, progress: bool = False) -> StreamRun:
    """Consume `consumer` in micro-batches into `fg` (see the module doc) until `stop_event` is set,
    `max_batches` batches were read, or (with `until_idle`) a poll returns nothing."""
    stop_event = stop_event or threading.Event()
    with source_claim(fg, consumer.name):
        return _consume(fg, consumer, config, embedder, batch_size, poll_timeout_s, max_batches, until_idle, stop_event, on_batch, progress)


@contextmanager
def source_claim(fg, source_name: str):
    """Hold the claim on (feature group, source) for a run: a second writer of the same source is
    refused at once, instead of re-applying batches the first had moved past and failing its commit.
    An advisory file lock under the home (released by the OS when a process dies); on one host. A
    home on object storage shared by several hosts needs one stream writer per source by deployment."""
    import fcntl

    from llmfti.errors import ConfigError
    from llmfti.hashing import sha256_text

    path = fg.store.home.root / "locks" / f"stream-{fg.table_name}-{sha256_text(source_name)[:16]}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another process is already streaming {source_name} into {fg.key}; nothing was read",
                              hint="stop it first, or stream another source") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _consume(fg, consumer, config, embedder, batch_size, poll_timeout_s, max_batches, until_idle, stop_event, on_batch, progress) -> StreamRun:
    from llmfti.pipelines.feature import resolve_config, ingest_items
    from llmfti.sources.stream import message_items

    config, embedder = resolve_config(fg, config, embedder)  # one embedder: weights load once, at the first change
    positions = stored_positions(fg, consumer.name)
    legacy = getattr(consumer, "legacy_name", None)
    if not positions and legacy and stored_positions(fg, legacy):
        from llmfti.errors import ConfigError

        # Offsets stored before sources were keyed by their full identity name only a file or a topic:
        # whether they belong to THIS source cannot be known, and guessing wrong skips or repeats messages.
        raise ConfigError(f"{fg.key} holds stream offsets under the ambiguous name {legacy!r} (an earlier llmfti keyed them by "
                          f"file name or topic only); this source is {consumer.name!r}",
                          hint=f"--source-id {legacy} continues from those offsets; --source-id {consumer.name} starts this source "
                               "from its beginning")
    run = StreamRun(consumer.name, positions=dict(positions), started_at=dict(positions))
    consumer.start(positions)
    try:
        while not stop_event.is_set() and (max_batches is None or run.batches < max_batches):
            messages = consumer.poll(batch_size, poll_timeout_s)
            if not messages:
                if until_idle:
                    break
                continue
            reached = dict(run.positions)
            for m in messages:
                reached[m.partition] = max(reached.get(m.partition, 0), m.offset + 1)
            items, deletes = message_items(messages, config.kind)
            started = time.perf_counter()
            summary = ingest_items(fg, lambda cfg, items=items: items, config=config, embedder=embedder, deletes=deletes, progress=progress,
                                   commit_properties={_key(consumer.name): json.dumps({str(k): v for k, v in sorted(reached.items())})})
            run.batches += 1
            run.commits += int(summary.committed)
            run.messages += len(messages)
            run.positions = reached
            logger.info("stream %s: batch %d, %d message(s), %s in %.2fs", consumer.name, run.batches, len(messages),
                        f"commit {summary.data_commit}" if summary.committed else "no change", time.perf_counter() - started)
            if on_batch:
                on_batch(summary)
    finally:
        consumer.close()
    return run


def parse_kafka_uri(uri: str) -> tuple[str, str]:
    """'kafka://host:9092[,host2:9092]/topic' -> (bootstrap servers, topic)."""
    from llmfti.errors import ConfigError

    rest = uri[len("kafka://"):] if uri.startswith("kafka://") else ""
    servers, _, topic = rest.partition("/")
    if not servers or not topic or "/" in topic:
        raise ConfigError(f"{uri!r} is not a Kafka source: use kafka://HOST:PORT/TOPIC")
    return servers, topic
