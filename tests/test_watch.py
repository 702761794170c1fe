"""`llmfti ingest --watch`: a catch-up scan at start, settled batches committed as ONE commit each
(deletes included), files still being written held back, Ctrl-C finishing the batch, and nothing lost
to a SIGKILL that the next start does not recover."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import write
from llmfti.pipelines.watch import PendingChanges, watch


def doc_ids(fg):
    return sorted(set(fg.read(columns=["doc_id"]).column("doc_id").to_pylist()))


def test_pending_changes_hold_files_still_being_written(tmp_path):
    now = [1000.0]
    pending = PendingChanges(tmp_path, settle_s=2.0, clock=lambda: now[0])
    done, busy, gone = write(tmp_path / "done.md", "x"), write(tmp_path / "busy.md", "x"), tmp_path / "gone.md"
    os.utime(done, (990.0, 990.0))
    os.utime(busy, (999.5, 999.5))  # modified half a second ago
    pending.add([("added", done), ("modified", busy), ("added", gone), ("added", tmp_path / ".hidden.md"), ("added", tmp_path / "x.md.part")])
    assert pending.ready() == ([done], [gone])  # a file gone since its event becomes a delete
    assert len(pending) == 1
    now[0] = 1002.0
    assert pending.ready() == ([busy], []) and len(pending) == 0


def test_each_batch_is_one_commit_with_its_deletes_after_a_catch_up_scan(store, tmp_path, hash_config):
    root = tmp_path / "corpus"
    write(root / "a.md", "# A\n\nAlpha.\n")
    write(root / "sub" / "b.md", "# B\n\nBravo.\n")
    write(root / "sub" / "c.md", "# C\n\nCharlie.\n")
    fg = store.feature_group("docs", must_exist=False)
    batches = []

    def events():
        yield set()  # the catch-up scan has run by now
        assert doc_ids(fg) == ["a.md", "sub/b.md", "sub/c.md"]
        write(root / "a.md", "# A\n\nAlpha, edited.\n")
        write(root / "d.md", "# D\n\nDelta.\n")
        (root / "sub" / "c.md").unlink()
        for p in (root / "a.md", root / "d.md"):
            os.utime(p, (time.time() - 10, time.time() - 10))  # settled
        yield {("modified", str(root / "a.md")), ("added", str(root / "d.md")), ("deleted", str(root / "sub" / "c.md"))}
        versions = len(fg.versions_log())
        yield {("deleted", str(root / "sub"))}  # a whole folder removed (its files' events may not come)
        assert len(fg.versions_log()) > versions

    commits = watch(fg, root, config=hash_config, on_batch=batches.append, changes=events(), settle_s=1.0)
    assert commits == 3 and [b.committed for b in batches] == [True, True, True]
    edit = batches[1]
    assert (edit.documents["added"], edit.documents["updated"], edit.documents["deleted"]) == (1, 1, 1)
    assert edit.data_commit is not None and edit.documents["seen"] == 2  # only the changed files were read
    assert doc_ids(fg) == ["a.md", "d.md"]
    assert "edited" in " ".join(fg.read(columns=["text"], where="doc_id = 'a.md'").column("text").to_pylist())


def test_real_file_events_reach_the_feature_group(store, tmp_path, hash_config):
    root = tmp_path / "corpus"
    write(root / "a.md", "# A\n\nAlpha.\n")
    fg = store.feature_group("docs", must_exist=False)
    stop, batches = threading.Event(), []
    thread = threading.Thread(target=watch, args=(fg, root), kwargs=dict(config=hash_config, on_batch=batches.append, stop_event=stop,
                                                                            debounce_ms=100, settle_s=0.2), daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not batches and time.time() < deadline:
        time.sleep(0.05)
    write(root / "new.md", "# New\n\nA file that appeared while watching.\n")
    while len(batches) < 2 and time.time() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive() and len(batches) >= 2
    assert doc_ids(fg) == ["a.md", "new.md"]


def test_a_change_between_the_catch_up_and_the_watcher_is_not_missed(store, tmp_path, hash_config):
    """The file watcher starts after the catch-up scan: a file written in between raises no event.
    Written here from the catch-up's own callback (exactly that gap), it must still be ingested."""
    root = tmp_path / "corpus"
    write(root / "a.md", "# A\n\nAlpha.\n")
    fg = store.feature_group("docs", must_exist=False)
    stop, batches = threading.Event(), []

    def on_batch(summary):
        batches.append(summary)
        if len(batches) == 1:  # the catch-up has committed; the watcher does not exist yet
            write(root / "gap.md", "# Gap\n\nWritten before the watcher started.\n")

    thread = threading.Thread(target=watch, args=(fg, root), kwargs=dict(config=hash_config, on_batch=on_batch, stop_event=stop,
                                                                            debounce_ms=100, settle_s=0.2), daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not batches and time.time() < deadline:
        time.sleep(0.05)
    while "gap.md" not in doc_ids(fg) and time.time() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert doc_ids(fg) == ["a.md", "gap.md"]


@pytest.mark.integration
def test_ctrl_c_finishes_the_batch_and_sigkill_loses_nothing_a_restart_does_not_recover(home, tmp_path):
    root = tmp_path / "corpus"
    write(root / "a.md", "# A\n\nAlpha.\n")
    env = {**os.environ, "LLMFTI_HOME": str(home)}
    cmd = [sys.executable, "-m", "llmfti", "ingest", str(root), "-f", "docs", "--set", "embedder.model=hash-64", "--watch",
           "--debounce-ms", "100", "--settle", "0.2", "--json"]

    def start():
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:  # the catch-up scan is committed before this line
            if "commit" in line or "no change" in line:
                # Keep draining stderr, or a full pipe would block the watcher's next progress line.
                threading.Thread(target=proc.stderr.read, daemon=True).start()
                return proc
        raise AssertionError(proc.communicate())

    def stored():
        from llmfti.store import FeatureStore

        return doc_ids(FeatureStore(home).feature_group("docs"))

    proc = start()
    write(root / "b.md", "# B\n\nBravo.\n")
    deadline = time.time() + 60
    while "b.md" not in stored() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    doc = json.loads(out)  # one JSON document, even when interrupted
    assert doc["interrupted"] and doc["commits"] >= 2 and stored() == ["a.md", "b.md"]

    proc = start()
    proc.kill()  # SIGKILL: no cleanup at all
    proc.wait()
    (root / "a.md").unlink()
    write(root / "c.md", "# C\n\nCharlie, written while nothing watched.\n")
    proc = start()  # the catch-up scan commits what happened while it was down
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert stored() == ["b.md", "c.md"]


def test_a_renamed_moved_in_or_linked_folder_is_ingested_whole(store, tmp_path, hash_config):
    """Issue 27, finding 4: renaming a folder deleted its documents, and a folder moved in (or linked)
    was never ingested until a restart: its files raise no events of their own."""
    root, outside = tmp_path / "corpus", tmp_path / "elsewhere"
    write(root / "old" / "a.md", "# A\n\nAlpha.\n")
    write(outside / "moved" / "b.md", "# B\n\nBravo.\n")
    write(outside / "linked" / "c.md", "# C\n\nCharlie.\n")
    for p in [root / "old" / "a.md", outside / "moved" / "b.md", outside / "linked" / "c.md"]:
        os.utime(p, (time.time() - 10, time.time() - 10))
    fg = store.feature_group("docs", must_exist=False)

    def events():
        yield set()
        (root / "old").rename(root / "new")  # one event per side of the rename, none for a.md
        yield {("deleted", str(root / "old")), ("added", str(root / "new"))}
        assert doc_ids(fg) == ["new/a.md"]
        (outside / "moved").rename(root / "moved")
        (root / "linked").symlink_to(outside / "linked", target_is_directory=True)
        yield {("added", str(root / "moved")), ("added", str(root / "linked"))}

    watch(fg, root, config=hash_config, changes=events(), settle_s=1.0)
    assert doc_ids(fg) == ["linked/c.md", "moved/b.md", "new/a.md"]
