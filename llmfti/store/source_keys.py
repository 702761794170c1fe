"""Source keys: per feature-group version, a hash of each document's raw input (before cleaning)
and the doc hash its cleaned text got, so a re-ingest skips cleaning and hashing every document whose
input did not change (cleaning was 60 % of a re-ingest of 10k unchanged documents).

A cache beside the table, `artifacts/feature_groups/NAME/VERSION/source_keys.arrow`, rewritten
atomically (temp file + rename) after a run. Never trusted alone: a key counts only while its doc hash
is the one the table holds for that document, so a stale or lost cache costs time, never correctness.
The key includes a hash of the cleaner's source, so a changed cleaner re-cleans everything.

The file may also carry a *vouched state*: the table signature (`llmfti.table_state`) of a commit at
which the cache's doc hashes were checked to be exactly the table's documents, with that commit's
number and whether its indices were current. While the table's signature is still that one, a run
takes the documents and their hashes from the cache instead of scanning the table (a re-ingest that
changes nothing then never opens Lance); any commit since, by anyone, changes the signature.
"""

from __future__ import annotations

import json
import os
import uuid
from functools import lru_cache
from pathlib import Path

from llmfti.hashing import sha256_file, sha256_text


@lru_cache(maxsize=1)
def _cleaner_version() -> str:
    from llmfti.transforms.model_independent import clean

    return sha256_file(clean.__file__)[:16]


def raw_key(doc) -> str:
    """What decides a document's doc hash, before cleaning: its raw text, metadata, explicit time and fields."""
    explicit = doc.event_time.isoformat() if doc.event_time_explicit else ""
    meta = json.dumps(doc.metadata, sort_keys=True, default=str) if doc.metadata else ""
    fields = json.dumps(doc.fields, sort_keys=True, default=str) if doc.fields else ""
    return sha256_text(_cleaner_version(), doc.text, meta, explicit, fields)[:32]


_STATE_KEY = b"llmfti_vouched_state"


class SourceKeys:
    def __init__(self, fg):
        self.path = Path(fg.store.home.artifacts) / "feature_groups" / fg.name / str(fg.version) / "source_keys.arrow"
        self.state: dict | None = None  # the vouched state read by load(): signature, version, indexes_current, index_threshold

    def load(self) -> dict[str, tuple[str, str]]:
        """doc_id -> (raw key, doc hash); empty when there is no cache or it cannot be read."""
        import pyarrow as pa

        self.state = None
        try:
            with pa.memory_map(str(self.path)) as src:
                table = pa.ipc.open_file(src).read_all()
        except (OSError, pa.ArrowInvalid):
            return {}
        ids, keys, hashes = (table.column(c).to_pylist() for c in ("doc_id", "raw_key", "doc_hash"))
        raw_state = (table.schema.metadata or {}).get(_STATE_KEY)
        if raw_state:
            try:
                state = json.loads(raw_state)
            except ValueError:
                state = None
            self.state = state if isinstance(state, dict) else None
        return {d: (k, h) for d, k, h in zip(ids, keys, hashes)}

    def vouched(self, home, table_name: str) -> dict | None:
        """The loaded state, if the table is still at the commit it was vouched at."""
        from llmfti.table_state import table_signature

        if not self.state or not self.state.get("signature"):
            return None
        return self.state if table_signature(home, table_name) == self.state["signature"] else None

    def save(self, entries: dict[str, tuple[str, str]], state: dict | None = None) -> None:
        import pyarrow as pa

        ids = sorted(entries)
        table = pa.table({"doc_id": ids, "raw_key": [entries[d][0] for d in ids], "doc_hash": [entries[d][1] for d in ids]})
        if state:
            table = table.replace_schema_metadata({_STATE_KEY: json.dumps(state, sort_keys=True).encode()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{uuid.uuid4().hex}.tmp")  # unique per writer: threads and hosts share homes
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, self.path)
