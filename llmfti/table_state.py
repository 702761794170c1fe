"""What a LanceDB table holds, known without opening it: a signature of its latest commit from one
directory listing, and a local copy of small tables' rows that stays valid while the signature does.

A run that may end without writing (a re-ingest that changes nothing) needs to know whether a table
changed since it last looked; opening the table to find out costs `import lance` (~0.4 s of a cold
start on 2 cores: pyarrow.dataset, and pandas, which pyarrow imports for its scalars). On a local home
every commit adds a manifest to `<table>.lance/_versions/` (Lance never rewrites one; the version hint
it does rewrite is listed with its size and modification time) and removing old versions deletes some,
so the listing changes with every commit: equal listings, equal tables.

Object-store homes have no signature (a listing there is a network call): they always read the table.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid

_SIGNATURE_KEY = b"llmfti_table_signature"


def table_signature(home, name: str) -> str | None:
    """A digest of table `name`'s `_versions/` listing (names, sizes, modification times), or None when
    the home is an object store, the table has no manifest, or the listing changed while being read."""
    if home.remote:
        return None
    folder = home.db_path / f"{name}.lance" / "_versions"
    try:
        # Inodes too: a table dropped and re-created within one timestamp tick (coarse on some network
        # file systems) has the same manifest names and sizes, but new files in a new folder.
        entries = sorted((e.name, e.inode(), s.st_size, s.st_mtime_ns) for e in os.scandir(folder) for s in (e.stat(),))
        entries.append(("", os.stat(folder).st_ino, 0, 0))
    except OSError:
        return None  # no table, no access, or a file deleted between the listing and its stat (a cleanup)
    if not any(e[0].endswith(".manifest") for e in entries):
        return None
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def consistent_read(home, name: str, read):
    """`read(dataset)` of table `name` at its latest commit, with the signature of exactly that commit:
    (result, signature), the signature None when a commit landed during the read (or there is none).
    `read` gets None when there is no such table."""
    before = table_signature(home, name)
    result = read(home.dataset(name))
    return result, (before if before is not None and table_signature(home, name) == before else None)


def table_rows(home, name: str):
    """All rows of a small table `name` (the store's own metadata) as an Arrow table, None when there is
    no such table. On a local home they come from a copy under `<root>/cache/tables/` while the table's
    signature is the one the copy was made at, so an unchanged table is read without Lance; otherwise
    the table is read (pylance) and the copy refreshed."""
    import pyarrow as pa

    path = home.root / "cache" / "tables" / f"{name}.arrow"
    signature = table_signature(home, name)
    if signature is not None:
        try:
            with pa.memory_map(str(path)) as src:
                copy = pa.ipc.open_file(src).read_all()
            if (copy.schema.metadata or {}).get(_SIGNATURE_KEY) == signature.encode():
                return copy
        except (OSError, pa.ArrowInvalid):
            pass  # no copy yet, or a torn one: read the table
    rows, signature = consistent_read(home, name, lambda ds: None if ds is None else ds.to_table())
    if rows is not None and signature is not None:
        _write_copy(path, rows.replace_schema_metadata({**(rows.schema.metadata or {}), _SIGNATURE_KEY: signature.encode()}))
    return rows


def pylist(table) -> list[dict]:
    """`table.to_pylist()`, the same values, without importing pandas: pyarrow imports it (~0.2 s) to turn
    a timezone-aware timestamp into a datetime, so those columns are converted here."""
    import pyarrow as pa

    columns = {}
    for name, column in zip(table.column_names, table.columns):
        kind = column.type
        zone = _zone(kind.tz) if pa.types.is_timestamp(kind) and kind.unit in _MICROS_PER else False
        if zone is not False:
            from datetime import datetime, timedelta, timezone

            epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
            per = _MICROS_PER[kind.unit]
            values = []
            # A view, not a cast: casting loads pyarrow.compute (~80 ms); the bits are the same int64s.
            for v in (x for chunk in column.chunks for x in chunk.view(pa.int64()).to_pylist()):
                if v is None:
                    values.append(None)
                    continue
                at = epoch + timedelta(microseconds=v * per)
                values.append(at.astimezone(zone) if zone else at.replace(tzinfo=None))
            columns[name] = values
        else:
            columns[name] = column.to_pylist()
    return [dict(zip(columns, row)) for row in zip(*columns.values())] if columns else [{} for _ in range(table.num_rows)]


_MICROS_PER = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _zone(tz: str | None):
    """The tzinfo pyarrow gives a named zone (a ZoneInfo), None for naive timestamps, False for what is
    left to pyarrow (fixed offsets like '+02:00')."""
    if not tz:
        return None
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(tz)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return False


def _write_copy(path, table) -> None:
    import pyarrow as pa

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")  # unique per writer: threads and hosts share homes
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, path)  # readers see the old copy or the new one, never half of one
    except OSError:
        pass  # a read-only home: every read goes to the table, as before
