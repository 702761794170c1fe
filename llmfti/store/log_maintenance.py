"""Bounded maintenance of the inference log table, run from the log's flush thread: scalar indices
created once, small fragments compacted, index deltas added and merged, superseded versions pruned.
See llmfti.store.inference_log for why each bound keeps the cost flat as the log grows."""

from __future__ import annotations

import time
from datetime import timedelta

from llmfti.logs import get_logger
from llmfti.store.log_schema import LOG_TABLE

# Compaction target of the log: a full fragment is never rewritten, so one compaction rewrites at
# most this many rows plus the small fragments, whatever the size of the log. Small, because the
# growing tail fragment is rewritten by every run until it is full (16k rows with 384-float vectors
# is ~30 MB); 1M rows then make ~60 fragments, which scans and index lookups take in their stride.
LOG_TARGET_ROWS = 16 * 1024
LOG_KEEP_WITHIN = timedelta(minutes=10)  # versions of the log kept after they are superseded (readers finish)
MAINTAIN_INTERVAL_S = 60.0
MAINTAIN_SMALL_FRAGMENTS = 8  # ... or sooner, once this many small fragments piled up
MERGE_SEGMENTS = 8  # index delta segments before they are merged into one
logger = get_logger(__name__)


def ensure_log_indexes(tbl) -> list[str]:
    """The log's scalar indices, created when missing (once per table): returns what was built."""
    from lancedb.index import BTree, Bitmap

    have = {c for idx in tbl.list_indices() for c in idx.columns}
    built = []
    for column, config in (("request_id", BTree()), ("time", BTree()), ("deployment", Bitmap())):
        if column not in have:
            tbl.create_index(column, config=config, replace=True)
            built.append(column)
    return built


class LogMaintenance:
    """Bounded maintenance of the log table, run from the flush thread (see the module doc). Failures
    are logged and retried at the next interval; a concurrent writer's commit wins over it."""

    def __init__(self, *, interval_s: float = MAINTAIN_INTERVAL_S, keep_within: timedelta = LOG_KEEP_WITHIN,
                 small_fragments: int = MAINTAIN_SMALL_FRAGMENTS, clock=time.monotonic):
        self.interval_s, self.keep_within, self.small_fragments, self.clock = interval_s, keep_within, small_fragments, clock
        self._last = clock()
        self.runs = 0
        self.last_report = None

    def due(self, tbl) -> bool:
        from llmfti.store.maintenance import fragment_stats

        if self.clock() - self._last >= self.interval_s:
            return True
        return fragment_stats(tbl, LOG_TARGET_ROWS)["small_fragments"] >= self.small_fragments

    def run(self, tbl):
        from llmfti.store.indexing import update_indexes
        from llmfti.store.maintenance import RetentionPolicy, maintain_table

        self._last = self.clock()
        segments = max((int(getattr(tbl.index_stats(i.name), "num_indices", 1) or 1) for i in tbl.list_indices()), default=1)
        report = maintain_table(tbl, LOG_TABLE, RetentionPolicy(keep_within=self.keep_within), target_rows=LOG_TARGET_ROWS, do_index=False)
        # Delta segments (cost: the new rows) until MERGE_SEGMENTS pile up, then one merge.
        report.indexed = update_indexes(tbl, merge=segments >= MERGE_SEGMENTS)
        self.runs += 1
        self.last_report = report
        logger.debug("inference log maintenance: %s", report.to_dict())
        return report
