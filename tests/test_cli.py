"""The CLI: --json prints exactly one JSON document on stdout; errors exit non-zero with a message."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from conftest import write
from llmfti.cli import app

runner = CliRunner()


def run(*args, ok=True):
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def as_json(result):
    return json.loads(result.stdout)


def test_ingest_show_history_tag_search_json(home, corpus):
    s = as_json(run("--home", str(home), "ingest", str(corpus), "-f", "docs", "--set", "embedder.model=hash-64", "--json"))
    assert s["documents"]["added"] == 3 and s["committed"]
    again = as_json(run("--home", str(home), "ingest", str(corpus), "-f", "docs", "--json"))
    assert not again["committed"] and again["documents"]["unchanged"] == 3
    listing = as_json(run("--home", str(home), "fg", "list", "--json"))
    assert [g["name"] for g in listing["feature_groups"]] == ["docs"]
    shown = as_json(run("--home", str(home), "fg", "show", "docs:1", "--json"))
    assert shown["embedder"]["id"] == "hash-64" and shown["rows"] > 0 and shown["latest_commit"] == s["commit"]
    tagged = as_json(run("--home", str(home), "fg", "tag", "docs", str(s["data_commit"]), "gold", "--json"))
    assert tagged["commit"] == s["data_commit"]
    hist = as_json(run("--home", str(home), "fg", "history", "docs", "--json"))
    assert any("gold" in c["tags"] for c in hist["commits"])
    found = as_json(run("--home", str(home), "fg", "search", "docs", "context manager", "-k", "2", "--as-of", "gold", "--json"))
    assert found["results"] and set(found["results"][0]) >= {"chunk_id", "source", "score", "text"}


def test_errors_exit_non_zero_with_json_error(home, corpus):
    run("--home", str(home), "ingest", str(corpus), "-f", "docs", "--set", "embedder.model=hash-64")
    cmd = [sys.executable, "-m", "llmfti", "--home", str(home)]
    missing = subprocess.run(cmd + ["fg", "show", "nope", "--json"], capture_output=True, text=True)
    assert missing.returncode == 3 and json.loads(missing.stdout)["type"] == "NotFoundError"
    assert "does not exist" in missing.stderr
    refused = subprocess.run(cmd + ["ingest", str(corpus), "-f", "docs", "--set", "embedder.model=hash-32", "--json"], capture_output=True, text=True)
    assert refused.returncode == 4 and "--version 2" in json.loads(refused.stdout)["error"]
    bad_cfg = subprocess.run(cmd + ["ingest", str(corpus), "-f", "x", "--set", "chunker.overlap=999"], capture_output=True, text=True)
    assert bad_cfg.returncode == 2 and "overlap" in bad_cfg.stderr
    no_src = subprocess.run(cmd + ["ingest", "/does/not/exist", "-f", "docs"], capture_output=True, text=True)
    assert no_src.returncode == 2 and "source not found" in no_src.stderr


def test_fail_on_quarantine(home, corpus):
    write(corpus / "bin.txt", b"\x00\x00")
    result = run("--home", str(home), "ingest", str(corpus), "-f", "d", "--set", "embedder.model=hash-16", "--fail-on-quarantine", "--json", ok=False)
    assert result.exit_code == 5
    assert json.loads(result.stdout)["documents"]["quarantined"] == 1  # still exactly one JSON document


def test_import_and_help_stay_light():
    code = "import sys, llmfti, llmfti.cli; print(','.join(m for m in ('torch','transformers','lancedb','sentence_transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    helped = subprocess.run([sys.executable, "-m", "llmfti", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "ingest" in helped.stdout


@pytest.mark.parametrize("verb", [["ingest"], ["fg", "search"], ["fg", "history"], ["models", "pull-defaults"]])
def test_help_explains_each_verb(verb):
    result = run(*verb, "--help")
    assert "--json" in result.stdout


def test_usage_errors_and_markup_like_input_stay_clean(home):
    cmd = [sys.executable, "-m", "llmfti", "--home", str(home)]
    bad_k = subprocess.run(cmd + ["fg", "search", "docs", "q", "-k", "0", "--json"], capture_output=True, text=True)
    assert bad_k.returncode == 2 and json.loads(bad_k.stdout)["type"] == "UsageError"
    markup = subprocess.run(cmd + ["fg", "show", "[/x]"], capture_output=True, text=True)
    assert markup.returncode == 2 and "[/x]" in markup.stderr and "Traceback" not in markup.stderr
    since = subprocess.run(cmd + ["logs", "d", "--since", "garbage"], capture_output=True, text=True)
    assert since.returncode == 2 and "ISO-8601" in since.stderr
    unreachable = subprocess.run(cmd + ["ask", "d", "q", "--url", "http://127.0.0.1:9", "--json"], capture_output=True, text=True)
    assert unreachable.returncode == 1 and "cannot reach" in json.loads(unreachable.stdout)["error"]
