"""The continuous feature pipeline over a folder: `llmfti ingest SOURCE --feature-group NAME --watch`.

    from llmfti.pipelines.watch import watch
    watch(fg, "docs/", on_batch=print)            # until stop_event is set (the CLI: Ctrl-C)

1. Catch up: a full `--sync` ingest of the folder at start, so whatever changed while the watcher was
   down (files added, edited or removed) is committed first.
2. Watch (`watchfiles`: inotify/FSEvents, polling where those are missing): events are debounced
   (`debounce_ms`), and a file modified less than `settle_s` ago is held back until it stops
   changing, so a file still being written is not read half-way (it would be quarantined, or worse,
   ingested truncated).
3. Each batch of settled changes goes through the same feature pipeline (`ingest_items`) as ONE
   commit: added and edited files are loaded, removed files (and everything stored under a removed
   folder) are deleted in that same commit.

Ctrl-C (`stop_event`) ends the loop after the batch in progress is committed. A SIGKILL at any
point leaves the table at its last commit; the next start's catch-up scan commits whatever was
missed, since change detection compares content hashes with what is stored.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from llmfti.errors import ConfigError
from llmfti.logs import get_logger

logger = get_logger(__name__)
# Editors and downloaders write to names like these and rename at the end: never ingest them.
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", ".swx", "~")


def _is_temp(path: Path) -> bool:
    return path.name.startswith(".") or path.name.endswith(_TEMP_SUFFIXES)


@dataclass
class PendingChanges:
    """File events seen but not committed yet: path -> 'upsert' | 'delete' (the last event wins: a file
    created then removed within one batch is a delete of something maybe never stored, a no-op)."""

    root: Path
    settle_s: float = 1.0
    clock: Callable[[], float] = time.time
    _state: dict[Path, str] = field(default_factory=dict)

    def add(self, changes: Iterable[tuple[str, str | Path]]) -> None:
        for kind, raw in changes:
            path = Path(os.path.abspath(raw))
            if any(part.startswith(".") for part in path.relative_to(self.root).parts) or _is_temp(path):
                continue  # hidden entries are never ingested (as in a scan), nor are temp files
            self._state[path] = "delete" if kind == "deleted" else "upsert"

    def __len__(self) -> int:
        return len(self._state)

    def ready(self) -> tuple[list[Path], list[Path]]:
        """(files to load, paths to delete) that are settled, removed from the pending set. A file
        whose modification time is within `settle_s` (still being written) stays pending; one that
        vanished since its event becomes a delete."""
        now = self.clock()
        self._expand_folders()
        upserts, deletes = [], []
        for path, kind in sorted(self._state.items()):
            if kind == "upsert":
                try:
                    st = path.stat()
                except FileNotFoundError:
                    kind = "delete"
                else:
                    if now - st.st_mtime < self.settle_s:
                        continue
                    upserts.append(path)
            if kind == "delete":
                deletes.append(path)
            self._state.pop(path)
        return upserts, deletes

    def _expand_folders(self) -> None:
        """A folder that appears (created, renamed or moved in, a symlinked folder added) raises one event
        for itself and none for the files it brings: it stands for every file under it. A renamed folder's
        old name arrives as a delete and removes what was stored under it; the new name loads them again."""
        from llmfti.sources.discovery import files_under

        for path, kind in list(self._state.items()):
            if kind == "upsert" and path.is_dir():
                self._state.pop(path)
                for file in files_under(self.root, path):
                    if not _is_temp(file):
                        self._state.setdefault(Path(os.path.abspath(file)), "upsert")


def _stored_under(fg, rels: list[str]) -> set[str]:
    """Doc ids stored from these relative paths: the document itself, records of a JSONL file
    (source '<file>:<line>'), and everything under a removed folder."""
    if not rels or not fg.has_data():
        return set()
    from llmfti.pipelines.feature_state import stored_sources

    scopes = tuple(rels) + tuple(r + "/" for r in rels) + tuple(r + ":" for r in rels)
    return {doc_id for doc_id, source in stored_sources(fg) if doc_id in rels or source.startswith(scopes) or doc_id.startswith(scopes)}


def ingest_changes(fg, root: str | Path, upserts: list[Path], deletes: list[Path], *, config=None, embedder=None, progress: bool = False):
    """One commit for one batch of changed files under `root`: load `upserts`, delete what was stored
    from `deletes`, and drop records that vanished from an edited JSONL file."""
    from llmfti.pipelines.feature import ingest_items

    # The loader's per-file step, so doc ids stay relative to the watched root (a file given alone
    # would be named relative to its own folder).
    from llmfti.sources.loaders import load_file

    root = Path(os.path.abspath(root))
    loaded_rels = [p.relative_to(root).as_posix() for p in upserts]
    deleted_rels = [p.relative_to(root).as_posix() for p in deletes]
    # Records stored from an edited JSONL file are candidates for deletion; those still in it are
    # kept (ingest_items never deletes a doc id this run loaded).
    jsonl = [r for r in loaded_rels if r.lower().endswith(".jsonl")]
    doomed = _stored_under(fg, deleted_rels + jsonl)

    def items(cfg):
        for path in upserts:
            yield from load_file(root, path, cfg.max_file_bytes, cfg.kind)

    return ingest_items(fg, items, config=config, embedder=embedder, progress=progress, deletes=sorted(doomed))


def watch(fg, root: str | Path, *, config=None, embedder=None, on_batch: Callable[[object], None] | None = None,
          stop_event: threading.Event | None = None, debounce_ms: int = 1000, settle_s: float = 1.0, progress: bool = False,
          force_polling: bool | None = None, changes: Iterable[set] | None = None) -> int:
    """Catch up, then commit batches of settled changes until `stop_event` is set (see the module
    doc). `changes` replaces the watchfiles event stream (tests). Returns the number of commits."""
    import watchfiles

    from llmfti.pipelines.feature import resolve_config, ingest

    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"--watch needs a folder, not {str(root)!r}")
    stop_event = stop_event or threading.Event()
    # One embedder for every batch: its weights load at the first change that needs embedding, once.
    config, embedder = resolve_config(fg, config, embedder)
    commits = 0

    def done(summary) -> None:
        nonlocal commits
        commits += int(summary.committed)
        if on_batch:
            on_batch(summary)

    done(ingest(fg, [str(root)], config=config, embedder=embedder, sync=True, progress=progress))
    pending = PendingChanges(Path(os.path.abspath(root)), settle_s)
    events = changes if changes is not None else watchfiles.watch(
        root, debounce=debounce_ms, step=min(50, debounce_ms), stop_event=stop_event, yield_on_timeout=True,
        rust_timeout=max(100, int(settle_s * 1000)), raise_interrupt=False, force_polling=force_polling)
    registered = changes is not None
    for batch in events:
        if not registered:
            # The file watcher exists from its first yield on (watchfiles yields at least every rust_timeout):
            # what changed between the catch-up scan and now raised no event, so scan once more. A no-op
            # scan loads no model and makes no commit.
            registered = True
            gap = ingest(fg, [str(root)], config=config, embedder=embedder, sync=True, progress=False)
            if gap.committed:
                done(gap)
        pending.add((change.name if hasattr(change, "name") else str(change), path) for change, path in batch)
        upserts, deletes = pending.ready()
        if upserts or deletes:
            logger.info("watch: %d changed, %d removed under %s", len(upserts), len(deletes), root)
            done(ingest_changes(fg, root, upserts, deletes, config=config, embedder=embedder, progress=progress))
        if stop_event.is_set():
            break
    return commits


def install_stop_on_sigint(stop_event: threading.Event) -> Callable[[], None]:
    """First Ctrl-C: finish the batch in progress, then stop. A second one interrupts at once.
    Returns a function restoring the previous handler."""
    import signal

    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if stop_event.is_set():
            raise KeyboardInterrupt
        stop_event.set()
        os.write(2, b"\nstopping after the current batch (Ctrl-C again to interrupt now)\n")

    signal.signal(signal.SIGINT, handler)
    return lambda: signal.signal(signal.SIGINT, previous)
