"""Maintenance of LanceDB tables: compaction, incremental index updates and version retention.

Storage only. Every ingest, index update and log flush adds a table version, and most add a small
fragment; without maintenance both grow with uptime, and so does the cost of opening, listing and
scanning a table. `maintain_table` bounds them:

1. index: add new rows to existing full-text and scalar indices and merge their delta segments
   (`indexing.update_indexes`), no rebuild. First, because Lance compacts fragments only within one
   index segment: a feature group whose commits each added a delta would not compact at all;
2. compact: merge small fragments (and materialise deletions) into fragments of `target_rows`. For a
   feature group (`materialize_deletions`), every fragment that carries a deletion file is rewritten
   too: a re-ingest deletes the rows it replaces, and Lance filters deleted rows on every vector query
   (measured at 1M chunks, 2 cores: search p50 8.5 ms without deletions, 9.4 ms with 1k rows deleted in
   one fragment, 10.8 ms after a 1 % re-ingest; Lance's own threshold rewrites a fragment only once
   10 % of it is deleted). The cost is a rewrite of those fragments (~13 s at 1M rows);
3. prune: remove old versions, except those a `RetentionPolicy` keeps (see `plan_prune`).

Which commits are protected (tags, deployments, training datasets, eval records) is not known here:
the store does not read the registry. `llmfti.pipelines.maintenance` computes that set and passes it
in. Pruning removes only the versions it lists by number (pylance `cleanup_old_versions(versions=)`),
so an old protected version survives while newer unprotected ones go, and time travel to it keeps
working. LanceDB's own `optimize()` is never called: it prunes every version older than its window
(7 days by default) and knows nothing of these pins.

What was pruned is recorded in the `_maintenance` system table, so `FeatureGroup.history()` can say
which commits existed and when they were removed.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from llmfti.errors import ConfigError
from llmfti.logs import get_logger
from llmfti.tables import TS, SystemTable, sql_quote

logger = get_logger(__name__)

MAINTENANCE = "_maintenance"
MAINTENANCE_SCHEMA = pa.schema([
    pa.field("table_name", pa.string(), nullable=False), pa.field("subject", pa.string()), pa.field("at", TS),
    pa.field("dry_run", pa.bool_()), pa.field("report", pa.string()),
])
DEFAULT_KEEP_WITHIN = timedelta(days=7)
# Lance's own default: a feature group compacts towards fragments of ~1M rows.
FEATURE_GROUP_TARGET_ROWS = 1024 * 1024
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str | timedelta) -> timedelta:
    """'90s', '30m', '24h', '7d', '2w' (or a timedelta) -> timedelta."""
    if isinstance(text, timedelta):
        return text
    m = _DURATION.match(str(text))
    if not m:
        raise ConfigError(f"{text!r} is not a duration: use a number and a unit, e.g. 30m, 24h, 7d, 2w")
    try:
        window = timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
        datetime.now(timezone.utc) - window  # the window is used as `now - window`: it must be a date
    except (OverflowError, ValueError):
        raise ConfigError(f"{text!r} is longer than any date can go back (at most about 9,000 years, e.g. 400000w)") from None
    return window


@dataclass(frozen=True)
class RetentionPolicy:
    """What pruning keeps. A version is removed only when all of these hold: it is not the latest; it
    is not tagged; it is not in `protected`; and the version AFTER it was made more than `keep_within`
    ago. Measuring from the successor (when the version stopped being the latest), not from the
    version's own time, keeps a version that served until recently, whatever its age, so a reader
    that opened it just before it was superseded never loses its files."""

    keep_within: timedelta = DEFAULT_KEEP_WITHIN
    protected: dict[int, list[str]] = field(default_factory=dict)  # commit -> why (from the pipeline)


@dataclass
class PrunePlan:
    prune: list[int]
    keep: dict[int, str]  # commit -> reason


def version_times(tbl) -> list[tuple[int, datetime, int]]:
    """(version, UTC time, rows) of every version still stored, oldest first."""
    out = []
    for v in tbl.list_versions():
        ts = v["timestamp"]
        # lancedb returns naive local time (datetime.fromtimestamp); make it aware UTC.
        ts = ts.astimezone(timezone.utc)
        out.append((int(v["version"]), ts, int((v.get("metadata") or {}).get("total_rows", -1))))
    return sorted(out)


def plan_prune(versions: list[tuple[int, datetime, int]], policy: RetentionPolicy, tagged: set[int], now: datetime) -> PrunePlan:
    """Which versions `policy` lets go (see RetentionPolicy), and why each other one stays."""
    keep: dict[int, str] = {}
    prune: list[int] = []
    if not versions:
        return PrunePlan(prune, keep)
    latest = versions[-1][0]
    for i, (version, _, _) in enumerate(versions):
        if version == latest:
            keep[version] = "latest"
        elif version in tagged:
            keep[version] = "tagged"
        elif version in policy.protected:
            keep[version] = "protected: " + "; ".join(sorted(set(policy.protected[version])))
        elif now - versions[i + 1][1] < policy.keep_within:
            keep[version] = f"superseded less than {_human(policy.keep_within)} ago"
        else:
            prune.append(version)
    return PrunePlan(prune, keep)


def fragment_stats(tbl, target_rows: int) -> dict[str, int]:
    """Fragments of the table's current version, how many are below `target_rows` (what compaction
    merges) and how many carry a deletion file."""
    frags = tbl.to_lance().get_fragments()
    rows = [f.metadata.num_rows for f in frags]
    return {"fragments": len(frags), "small_fragments": sum(1 for r in rows if r < target_rows), "rows": sum(rows),
            "with_deletions": sum(1 for f in frags if f.metadata.deletion_file is not None)}


def compact(tbl, target_rows: int, *, min_small: int = 2, materialize_deletions: bool = False) -> dict | None:
    """Merge small fragments into fragments of `target_rows` (one new version), when at least
    `min_small` are below it; with `materialize_deletions`, also rewrite every fragment that carries a
    deletion file (see the module doc). Otherwise the work is bounded by `target_rows` plus the small
    fragments: fragments already at the target are rewritten only once 10 % of their rows are deleted
    (Lance's default)."""
    stats = fragment_stats(tbl, target_rows)
    deletions = materialize_deletions and stats["with_deletions"] > 0
    if stats["small_fragments"] < min_small and not deletions:
        return None
    metrics = tbl.to_lance().optimize.compact_files(target_rows_per_fragment=target_rows, materialize_deletions=True,
                                                   materialize_deletions_threshold=0.0 if materialize_deletions else 0.1)
    tbl.checkout_latest()
    return {"fragments_removed": metrics.fragments_removed, "fragments_added": metrics.fragments_added,
            "deletions_materialized": stats["with_deletions"] if materialize_deletions else 0}


def prune(tbl, versions: list[int]) -> int:
    """Remove exactly these versions (never the latest, never a tagged one: Lance refuses both) and
    the files only they use. Returns the bytes freed. Files of in-flight writes are left alone
    (`delete_unverified=False`), so a concurrent writer is safe."""
    if not versions:
        return 0
    stats = tbl.to_lance().cleanup_old_versions(versions=list(versions), error_if_tagged_old_versions=False, delete_unverified=False)
    tbl.checkout_latest()
    return int(getattr(stats, "bytes_removed", 0) or 0)


@dataclass
class MaintenanceReport:
    subject: str  # feature group key (NAME:VERSION) or system table name
    table: str
    at: str
    dry_run: bool
    versions_before: int = 0
    versions_after: int = 0
    fragments_before: int = 0
    fragments_after: int = 0
    compaction: dict | None = None
    indexed: list[str] = field(default_factory=list)
    new_commits: list[int] = field(default_factory=list)  # versions made by maintenance itself (same data)
    pruned: list[dict] = field(default_factory=list)  # {"commit", "timestamp", "rows"}
    kept: dict[str, list[int]] = field(default_factory=dict)  # reason -> commits
    keep_within_s: float = 0.0
    bytes_removed: int = 0
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def maintain_table(tbl, subject: str, policy: RetentionPolicy, *, now: datetime | None = None, target_rows: int = FEATURE_GROUP_TARGET_ROWS,
                   do_compact: bool = True, do_index: bool = True, dry_run: bool = False, log: "MaintenanceLog | None" = None,
                   materialize_deletions: bool = False) -> MaintenanceReport:
    """Compact, index new rows incrementally, then prune what `policy` lets go (see the module doc).
    With `dry_run`, nothing is written: the report says what would be pruned now."""
    from llmfti.store.indexing import update_indexes

    started = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    tbl.checkout_latest()
    report = MaintenanceReport(subject=subject, table=tbl.name, at=now.isoformat(), dry_run=dry_run, keep_within_s=policy.keep_within.total_seconds())
    before = version_times(tbl)
    report.versions_before = len(before)
    report.fragments_before = fragment_stats(tbl, target_rows)["fragments"]
    if not dry_run:
        version0 = tbl.version
        if do_index:
            report.indexed = update_indexes(tbl)
        if do_compact:
            report.compaction = compact(tbl, target_rows, materialize_deletions=materialize_deletions)
        report.new_commits = list(range(version0 + 1, tbl.version + 1))
    versions = version_times(tbl)
    tagged = {int(t["version"]) for t in tbl.tags.list().values()}
    plan = plan_prune(versions, policy, tagged, now)
    times = {v: (ts, rows) for v, ts, rows in versions}
    report.pruned = [{"commit": v, "timestamp": times[v][0].isoformat(), "rows": times[v][1]} for v in plan.prune]
    for version, reason in plan.keep.items():
        report.kept.setdefault(reason, []).append(version)
    if not dry_run and plan.prune:
        report.bytes_removed = prune(tbl, plan.prune)
    report.versions_after = len(versions) - len(plan.prune) if dry_run else len(version_times(tbl))
    report.fragments_after = fragment_stats(tbl, target_rows)["fragments"]
    report.duration_s = round(time.perf_counter() - started, 3)
    if log is not None and not dry_run:
        log.record(report)
    return report


class MaintenanceLog:
    """`_maintenance`: one row per maintenance run of a table, with its report (what was compacted,
    indexed and pruned, and why the rest was kept)."""

    def __init__(self, home, db=None):
        self.table = SystemTable(home, MAINTENANCE, MAINTENANCE_SCHEMA, db=db)

    def record(self, report: MaintenanceReport) -> None:
        self.table.add({"table_name": report.table, "subject": report.subject, "at": datetime.fromisoformat(report.at),
                        "dry_run": report.dry_run, "report": json.dumps(report.to_dict(), default=str)})

    def runs(self, table_name: str) -> list[dict]:
        rows = self.table.query(f"table_name = {sql_quote(table_name)}")
        return sorted(({**json.loads(r["report"]), "at": r["at"].isoformat()} for r in rows), key=lambda r: r["at"])

    def pruned(self, table_name: str) -> dict[int, dict]:
        """commit -> {"commit", "timestamp", "rows", "pruned_at"} for every commit maintenance removed."""
        out = {}
        for run in self.runs(table_name):
            for p in run.get("pruned") or []:
                out[int(p["commit"])] = {**p, "pruned_at": run["at"]}
        return out

    def maintenance_commits(self, table_name: str) -> set[int]:
        """Versions that maintenance made (compaction, index updates): same data as the one before."""
        return {int(c) for run in self.runs(table_name) for c in run.get("new_commits") or []}


def _human(delta: timedelta) -> str:
    s = delta.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{s:g}s"

