"""Loaders: every supported format, and every kind of bad input quarantined with its reason."""

import pytest

from conftest import write
from llmfti.errors import ConfigError
from llmfti.sources import QuarantineItem, SourceDocument, load_sources
from pdf_fixture import make_pdf


def load(paths, **kw):
    items = list(load_sources([str(p) for p in paths], max_file_bytes=kw.pop("max_file_bytes", 10_000), **kw))
    docs = {i.doc_id: i for i in items if isinstance(i, SourceDocument)}
    bad = {i.source.split("/")[-1]: i for i in items if isinstance(i, QuarantineItem)}
    return docs, bad


def test_formats_become_text_with_structure(tmp_path):
    write(tmp_path / "a.md", "---\ndate: 2023-05-01\ntags: x\n---\n# Title\n\nBody.\n")
    write(tmp_path / "b.html", "<html><head><title>T</title><meta name='date' content='2022-01-02'><style>p{}</style>"
          "<script>var x=1;</script></head><body><h1>Head</h1><p>Para <b>bold</b></p></body></html>")
    write(tmp_path / "c.rst", "Section\n=======\n\ntext here\n\nSub\n---\n\nmore\n")
    write(tmp_path / "d.pdf", make_pdf("Hello from a PDF"))
    write(tmp_path / "e.jsonl", '{"id": "r1", "text": "record", "event_time": "2021-01-01T10:00:00Z", "metadata": {"k": 1}}\n')
    docs, bad = load([tmp_path])
    assert not bad
    assert docs["a.md"].text.startswith("# Title") and docs["a.md"].event_time.year == 2023 and docs["a.md"].event_time_explicit
    html = docs["b.html"].text
    assert "# Head" in html and "Para bold" in html and "var x" not in html and "<" not in html and "p{}" not in html
    assert docs["b.html"].event_time.year == 2022 and docs["b.html"].metadata["title"] == "T"
    assert "# Section" in docs["c.rst"].text and "## Sub" in docs["c.rst"].text
    assert "Hello from a PDF" in docs["d.pdf"].text
    assert docs["r1"].metadata == {"k": 1} and docs["r1"].event_time.hour == 10


def test_each_bad_input_is_quarantined_with_a_reason(tmp_path):
    write(tmp_path / "empty.md", "")
    write(tmp_path / "binary.txt", b"abc\x00\x01\x02")
    write(tmp_path / "latin1.txt", "caf\xe9".encode("latin-1"))
    write(tmp_path / "big.txt", "x" * 2000)
    write(tmp_path / "broken.pdf", b"%PDF-1.4 this is not a pdf")
    write(tmp_path / "frontmatter.md", "---\n: [\n---\nbody")
    write(tmp_path / "image.png", b"\x89PNG")
    write(tmp_path / "recs.jsonl", '{"text": "ok", "id": "good"}\nnot json\n{"id": "x"}\n{"text": "t", "event_time": "yesterday"}\n[1]\n{"text": "t", "metadata": 3}\n')
    write(tmp_path / "ok.md", "fine")
    docs, bad = load([tmp_path], max_file_bytes=1000)
    assert set(docs) == {"good", "ok.md"}
    reasons = {name: q.reason for name, q in bad.items()}
    assert reasons["empty.md"] == "empty"
    assert reasons["binary.txt"] == "binary"
    assert reasons["latin1.txt"] == "undecodable"
    assert reasons["big.txt"] == "over-size"
    assert reasons["broken.pdf"] == "unparseable"
    assert reasons["frontmatter.md"] == "unparseable"
    assert reasons["image.png"] == "unsupported-type"
    all_items = [i for i in load_sources([str(tmp_path / "recs.jsonl")], max_file_bytes=10_000) if isinstance(i, QuarantineItem)]
    assert [q.reason for q in all_items] == ["bad-record"] * 5
    assert any("invalid JSON" in q.detail for q in all_items) and any("missing field 'text'" in q.detail for q in all_items)
    assert any("event_time" in q.detail for q in all_items) and all(q.raw for q in all_items)


def test_doc_ids_are_relative_to_the_given_directory(tmp_path, monkeypatch):
    write(tmp_path / "root" / "x" / "a.md", "a")
    write(tmp_path / "root" / ".hidden" / "b.md", "b")
    monkeypatch.chdir(tmp_path)
    docs, _ = load(["root"])
    assert set(docs) == {"x/a.md"}  # hidden folders are skipped
    docs, _ = load([str(tmp_path / "root" / "x" / "*.md")])
    assert set(docs) == {"a.md"}


def test_missing_path_is_a_usage_error(tmp_path):
    with pytest.raises(ConfigError, match="source not found"):
        load([tmp_path / "nope"])
    with pytest.raises(ConfigError, match="no files match"):
        load([str(tmp_path / "*.zzz")])
