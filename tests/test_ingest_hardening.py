"""Hardening against bad input: every bad file is quarantined (or a bad value refused with a usage error),
never a traceback, and --sync never deletes what a run could not read."""

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write
from llmfti.config import FeatureConfig
from llmfti.errors import ConfigError
from llmfti.pipelines.feature import ingest as run_ingest
from llmfti.sources import QuarantineItem, SourceDocument, load_sources
from llmfti.sources.timeparse import TimeOutOfRange, parse_time
from pdf_fixture import make_pdf

HASH = FeatureConfig(embedder={"model": "hash-16"})


def stored(fg) -> dict[str, str]:
    """doc_id -> source of every stored row."""
    return {r["doc_id"]: r["source"] for r in fg.read(columns=["doc_id", "source"]).to_pylist()}


def reasons(summary) -> dict[str, str]:
    """File name (or name:line) -> quarantine reason of one run."""
    return {q["source"].split("/")[-1]: q["reason"] for q in summary.quarantine}


def pdf_created(year_one_date: str) -> bytes:
    """The fixture PDF with an Info dictionary holding CreationDate."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf("A PDF from long ago"))))
    writer.add_metadata({"/CreationDate": year_one_date})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# 1. dates out of range


def test_dates_out_of_range_are_quarantined_and_good_files_ingested(store, tmp_path):
    src = tmp_path / "src"
    write(src / "good.md", "# Good\n\nA document with an ordinary date.\n")
    write(src / "ancient.md", "---\ndate: 0001-01-01T00:00:00+01:00\n---\n# Ancient\n\nBefore year one in UTC.\n")
    write(src / "future.html", '<html><head><meta name="date" content="9999-12-31T23:00:00-05:00"></head><body><p>After 9999 in UTC.</p></body></html>')
    write(src / "old.pdf", pdf_created("D:00010101000000+01'00'"))
    fg = store.feature_group("dates", must_exist=False)
    s = run_ingest(fg, [str(src)], config=HASH)
    assert s.documents["added"] == 1 and set(stored(fg)) == {"good.md"}
    assert reasons(s) == {"ancient.md": "unparseable", "future.html": "unparseable", "old.pdf": "unparseable"}
    assert all("out of range" in q["detail"] for q in s.quarantine)


def test_parse_time_turns_overflow_into_a_value_error():
    for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00", 10**20):
        with pytest.raises(TimeOutOfRange):
            parse_time(value)
    assert issubclass(TimeOutOfRange, ValueError)
    assert parse_time("0001-01-01T00:00:00+00:00").year == 1  # the edge itself is fine


def test_as_of_out_of_range_is_a_usage_error(store, corpus, hash_config):
    fg = store.feature_group("docs", must_exist=False)
    run_ingest(fg, [str(corpus)], config=hash_config)
    with pytest.raises(ConfigError, match="out of range"):
        fg.resolve_commit("0001-01-01T00:00:00+01:00")
    cmd = [sys.executable, "-m", "llmfti", "--home", str(store.home.root)]
    for args in (["logs", "somewhere", "--since", "0001-01-01T00:00:00+01:00", "--json"],
                 ["fg", "search", "docs", "q", "--as-of", "0001-01-01T00:00:00+01:00", "--json"]):
        out = subprocess.run(cmd + args, capture_output=True, text=True)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert json.loads(out.stdout)["type"] == "ConfigError"


# 2. YAML aliases and metadata size


def billion_laughs(levels: int) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefghi", "bcdefghij"[: levels - 1]):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    return "---\n" + "\n".join(lines) + "\n---\n# Laughs\n\nbody\n"


@pytest.mark.parametrize("levels", [4, 9])  # 9 levels: 477 bytes that expand to ~580 million characters
def test_yaml_aliases_in_front_matter_are_refused_fast(tmp_path, levels):
    write(tmp_path / "src" / "laughs.md", billion_laughs(levels))
    write(tmp_path / "src" / "ok.md", "---\nanchor: &x 1\n---\nfine\n")  # an anchor alone expands nothing
    started = time.perf_counter()
    items = list(load_sources([str(tmp_path / "src")], max_file_bytes=10_000))
    assert time.perf_counter() - started < 5
    bad = [i for i in items if isinstance(i, QuarantineItem)]
    assert [(b.reason, b.doc_id) for b in bad] == [("unparseable", "laughs.md")]
    assert "alias" in bad[0].detail
    assert [i.doc_id for i in items if isinstance(i, SourceDocument)] == ["ok.md"]


def test_metadata_past_the_size_bound_is_quarantined(tmp_path):
    write(tmp_path / "src" / "fat.md", "---\nnotes: " + "x" * 70_000 + "\n---\nbody\n")
    write(tmp_path / "src" / "fat.jsonl", json.dumps({"id": "r", "text": "t", "metadata": {"k": "y" * 70_000}}) + "\n")
    items = list(load_sources([str(tmp_path / "src")], max_file_bytes=1_000_000))
    assert {(i.source.split("/")[-1], i.reason) for i in items} == {("fat.md", "over-size"), ("fat.jsonl:1", "bad-record")}
    assert all("metadata" in i.detail for i in items)


# 3. unreadable directories


def deny_listing(monkeypatch, *denied: Path) -> None:
    """Make os.scandir fail as it does for a directory without read permission (tests run as root)."""
    real = os.scandir
    blocked = {str(d) for d in denied}

    def scandir(path="."):
        if os.fspath(path) in blocked:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_sync_keeps_documents_under_an_unreadable_directory(store, corpus, hash_config, monkeypatch):
    write(corpus / "a_b" / "x.md", "Under a directory with an underscore.\n")
    write(corpus / "aXb" / "y.md", "Under a directory that the underscore must not match.\n")
    fg = store.feature_group("docs", must_exist=False)
    run_ingest(fg, [str(corpus)], config=hash_config)
    (corpus / "aXb" / "y.md").unlink()
    deny_listing(monkeypatch, corpus / "sub", corpus / "a_b")
    s = run_ingest(fg, [str(corpus)], sync=True)
    assert set(stored(fg)) == {"with.md", "loops.md", "sub/gen.txt", "a_b/x.md"}  # aXb/y.md is really gone
    assert s.documents["deleted"] == 1
    assert reasons(s) == {"sub": "unreadable", "a_b": "unreadable"}
    assert all("Permission denied" in q["detail"] for q in s.quarantine)


def test_an_unreadable_root_protects_everything(store, corpus, hash_config, monkeypatch):
    fg = store.feature_group("docs", must_exist=False)
    run_ingest(fg, [str(corpus)], config=hash_config)
    deny_listing(monkeypatch, corpus)
    s = run_ingest(fg, [str(corpus)], sync=True)
    assert s.documents["deleted"] == 0 and len(stored(fg)) == 3 and reasons(s) == {"corpus": "unreadable"}


# 4. unreadable or vanished JSONL files


def test_a_jsonl_file_deleted_after_discovery_is_quarantined(tmp_path):
    write(tmp_path / "src" / "a.jsonl", '{"id": "a1", "text": "first"}\n')
    write(tmp_path / "src" / "b.jsonl", '{"id": "b1", "text": "second"}\n')
    items = load_sources([str(tmp_path / "src")], max_file_bytes=10_000)
    first = next(items)  # discovery is done; b.jsonl is read later
    (tmp_path / "src" / "b.jsonl").unlink()
    rest = list(items)
    assert first.doc_id == "a1"
    assert [(q.reason, q.file) for q in rest] == [("unreadable", "b.jsonl")]


def test_an_unreadable_jsonl_is_quarantined_and_its_records_kept(store, tmp_path, monkeypatch):
    write(tmp_path / "src" / "recs.jsonl", '{"id": "a", "text": "alpha"}\n{"text": "no id"}\n')
    write(tmp_path / "src" / "doc.md", "a document\n")
    fg = store.feature_group("recs", must_exist=False)
    run_ingest(fg, [str(tmp_path / "src")], config=HASH)
    before = set(stored(fg))
    real_open = os.open

    def deny(path, flags, *args, **kw):
        if os.fspath(path).endswith("recs.jsonl"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", deny)
    s = run_ingest(fg, [str(tmp_path / "src")], sync=True)
    assert reasons(s) == {"recs.jsonl": "unreadable"} and s.documents["deleted"] == 0
    assert set(stored(fg)) == before and len(before) == 3


# 5. --sync and JSONL records: stable ids, relative sources, literal file names


def test_sync_keeps_records_whose_line_is_now_malformed(store, tmp_path):
    write(tmp_path / "src" / "recs.jsonl", '{"id": "a", "text": "alpha"}\n{"id": "b", "text": "beta"}\n')
    fg = store.feature_group("recs", must_exist=False)
    run_ingest(fg, [str(tmp_path / "src")], config=HASH)
    write(tmp_path / "src" / "recs.jsonl", '{"id": "a", "text": "alpha"}\n{"id": "b", "text": \n')
    s = run_ingest(fg, [str(tmp_path / "src")], sync=True)
    assert reasons(s) == {"recs.jsonl:2": "bad-record"} and s.documents["deleted"] == 0
    assert set(stored(fg)) == {"a", "b"}


def test_sources_are_relative_and_protection_does_not_depend_on_the_working_directory(store, tmp_path, monkeypatch):
    write(tmp_path / "src" / "recs.jsonl", '{"id": "a", "text": "alpha"}\n{"text": "beta without id"}\n')
    write(tmp_path / "src" / "sub" / "doc.md", "a document\n")
    fg = store.feature_group("recs", must_exist=False)
    run_ingest(fg, [str(tmp_path / "src")], config=HASH)  # absolute
    sources = stored(fg)
    assert sorted(sources.values()) == ["recs.jsonl:1", "recs.jsonl:2", "sub/doc.md"]  # no server path
    write(tmp_path / "src" / "recs.jsonl", b"\x00 binary now")
    monkeypatch.chdir(tmp_path)
    s = run_ingest(fg, ["src"], sync=True)  # relative
    assert reasons(s) == {"recs.jsonl": "binary"} and s.documents["deleted"] == 0
    assert stored(fg) == sources


def test_underscore_and_percent_in_file_names_are_not_wildcards(store, tmp_path):
    write(tmp_path / "src" / "a_b%.jsonl", '{"id": "w1", "text": "wild"}\n{"text": "wild, no id"}\n')
    write(tmp_path / "src" / "aXbYZ.jsonl", '{"id": "n1", "text": "neighbour"}\n')
    write(tmp_path / "src" / "a_b%.jsonl.md", "a document named like the file\n")
    fg = store.feature_group("recs", must_exist=False)
    run_ingest(fg, [str(tmp_path / "src")], config=HASH)
    (tmp_path / "src" / "aXbYZ.jsonl").unlink()
    (tmp_path / "src" / "a_b%.jsonl.md").unlink()
    write(tmp_path / "src" / "a_b%.jsonl", b"\x00 binary now")
    s = run_ingest(fg, [str(tmp_path / "src")], sync=True)
    assert s.documents["deleted"] == 2
    kept = stored(fg)
    assert "w1" in kept and len(kept) == 2 and all(v.startswith("a_b%.jsonl:") for v in kept.values())


# 6. symlinks and special files


def test_symlinks_and_special_files_are_reported(tmp_path):
    src, outside = tmp_path / "src", tmp_path / "outside"
    write(src / "good.md", "good\n")
    write(outside / "far.md", "far away\n")
    (src / "alias.md").symlink_to(src / "good.md")
    (src / "dangling.md").symlink_to(src / "nowhere.md")
    (src / "loop1.md").symlink_to(src / "loop2.md")
    (src / "loop2.md").symlink_to(src / "loop1.md")
    os.mkfifo(src / "pipe.md")
    (src / "ext").symlink_to(outside, target_is_directory=True)
    (src / "ext2").symlink_to(outside, target_is_directory=True)
    (src / "up").symlink_to(src, target_is_directory=True)
    items = list(load_sources([str(src)], max_file_bytes=10_000))
    assert sorted(i.doc_id for i in items if isinstance(i, SourceDocument)) == ["alias.md", "ext/far.md", "good.md"]
    bad = {i.source.split("/")[-1]: i.reason for i in items if isinstance(i, QuarantineItem)}
    assert bad == {"dangling.md": "broken-symlink", "loop1.md": "symlink-loop", "loop2.md": "symlink-loop",
                   "pipe.md": "not-a-regular-file", "ext2": "duplicate-dir", "up": "symlink-loop"}


def test_special_files_named_on_the_command_line_are_reported(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    items = list(load_sources([str(tmp_path / "pipe.txt"), str(tmp_path / "dangling.txt")], max_file_bytes=10_000))
    assert [(i.reason, i.doc_id) for i in items] == [("not-a-regular-file", "pipe.txt"), ("broken-symlink", "dangling.txt")]


# 7. names with a trailing newline


def test_names_ending_in_a_newline_are_refused(store, corpus, hash_config):
    from llmfti.registry.model_version import check_name
    from llmfti.store.names import parse_ref
    from llmfti.store.training_datasets.spec import TrainingDatasetSpec

    for ref in ("docs\n", "docs\n:2"):
        with pytest.raises(ConfigError, match="invalid feature group name"):
            parse_ref(ref)
    with pytest.raises(ConfigError, match="invalid feature group name"):
        run_ingest("docs\n", [str(corpus)], config=hash_config, home=store.home.root)
    assert store.list_groups() == []
    with pytest.raises(ConfigError):
        check_name("model\n")
    with pytest.raises(ValueError, match="invalid dataset name"):
        TrainingDatasetSpec(name="td\n", source="qa", model="m")


# beyond the list: nesting past the interpreter's recursion limit is bad input too


def test_deeply_nested_front_matter_and_json_are_quarantined(tmp_path):
    write(tmp_path / "src" / "deep.md", "---\nx: " + "[" * 5000 + "\n---\nbody\n")
    write(tmp_path / "src" / "deep.jsonl", '{"text": "t", "metadata": {"k": ' + "[" * 100_000 + "}}\n")
    items = list(load_sources([str(tmp_path / "src")], max_file_bytes=1_000_000))
    assert {(i.source.split("/")[-1], i.reason) for i in items} == {("deep.md", "unparseable"), ("deep.jsonl:1", "bad-record")}
    assert all("nested too deeply" in i.detail for i in items)
