"""The Ray engine (`llmfti ingest --engine ray`, `llmfti batch-infer --engine ray`) on a local Ray with
2 CPUs on loopback: the same chunk ids and vectors as the local engine, one commit per run carrying
the run id, a driver killed after the workers wrote their fragments leaves the table at its previous
commit, and batch inference on Ray answers like the local engine and logs every prediction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from agent_fixtures import deploy, make_home
from conftest import write

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read when ray is imported: stay on loopback
pytestmark = pytest.mark.integration
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_address():
    import logging

    ray = pytest.importorskip("ray")
    pytest.importorskip("lance_ray")
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def make_corpus(root: Path, n: int = 12) -> Path:
    for i in range(n):
        body = " ".join(f"Section {i} sentence {j}: context managers, loops and generators number {i * j}." for j in range(12))
        write(root / f"doc{i:02d}.md", f"# Document {i}\n\n{body}\n\n## Details\n\nMore about topic {i}: yield, with, for.\n")
    return root


def config(**kw):
    from llmfti.config import FeatureConfig

    return FeatureConfig(embedder={"model": "hash-64"}, chunker={"chunk_tokens": 40, "overlap": 8}, **kw)


def table_rows(home, name: str = "docs") -> dict[str, dict]:
    from llmfti.store import FeatureStore

    rows = FeatureStore(home).feature_group(name).table().to_arrow().to_pylist()
    return {r["chunk_id"]: r for r in rows}


def assert_same_rows(a: dict, b: dict) -> None:
    assert set(a) == set(b)  # the same chunk ids
    for cid in a:
        for col in ("doc_id", "text", "doc_hash", "chunk_index", "heading_path", "event_time", "source"):
            assert a[cid][col] == b[cid][col], (cid, col)
        assert np.allclose(a[cid]["vector"], b[cid]["vector"], atol=1e-6)


def test_ray_engine_stores_what_the_local_engine_stores_in_one_commit_per_run(ray_address, tmp_path):
    from llmfti.pipelines.feature import ingest
    from llmfti.pipelines.ray_engine import RUN_ID_PROPERTY
    from llmfti.store import FeatureStore

    docs = make_corpus(tmp_path / "corpus")
    local_home, ray_home = tmp_path / "local", tmp_path / "ray"
    local = ingest("docs", [str(docs)], home=local_home, config=config())
    on_ray = ingest("docs", [str(docs)], home=ray_home, config=config(), engine="ray")
    assert on_ray.committed and on_ray.chunks_written == local.chunks_written > 12
    assert on_ray.documents == local.documents
    assert_same_rows(table_rows(local_home), table_rows(ray_home))
    fg = FeatureStore(ray_home).feature_group("docs")
    # The data commit carries the run id (Lance transaction properties).
    assert fg.table().to_lance().read_transaction(on_ray.data_commit).transaction_properties[RUN_ID_PROPERTY] == on_ray.run_id

    # A second run: one document changed, one removed (--sync), one added; still one data commit.
    write(docs / "doc03.md", "# Changed\n\nThe third document now talks about decorators only.\n")
    (docs / "doc07.md").unlink()
    write(docs / "new.md", "# New\n\nAsync for iterates over an asynchronous iterable.\n")
    before = fg.table().version
    local2 = ingest("docs", [str(docs)], home=local_home, sync=True)
    ray2 = ingest("docs", [str(docs)], home=ray_home, sync=True, engine="ray")
    assert ray2.documents == local2.documents and ray2.documents["deleted"] == 1 and ray2.documents["updated"] == 1
    assert (ray2.chunks_written, ray2.chunks_deleted) == (local2.chunks_written, local2.chunks_deleted)
    assert_same_rows(table_rows(local_home), table_rows(ray_home))
    data_commits = [h for h in fg.history() if h["change"] == "data" and h["commit"] > before]
    assert [h["commit"] for h in data_commits] == [ray2.data_commit]
    assert fg.search("asynchronous iterable", k=1)["results"][0]["doc_id"] == "new.md"
    # Nothing changed: no Ray work, no commit.
    assert not ingest("docs", [str(docs)], home=ray_home, engine="ray").committed


def test_records_with_scores_on_ray_equal_local(ray_address, tmp_path):
    from llmfti.pipelines.feature import ingest
    from td_fixtures import qa_rows, write_jsonl

    path = write_jsonl(tmp_path / "qa.jsonl", qa_rows())
    cfg = config(kind="records", scorers=["length", "near_duplicate"])
    local = ingest("qa", [str(path)], home=tmp_path / "l", config=cfg)
    on_ray = ingest("qa", [str(path)], home=tmp_path / "r", config=cfg, engine="ray")
    assert on_ray.scoring["columns"].keys() == local.scoring["columns"].keys()
    a, b = table_rows(tmp_path / "l", "qa"), table_rows(tmp_path / "r", "qa")
    assert_same_rows(a, b)
    assert all(a[c]["score_length"] == b[c]["score_length"] and a[c]["answer"] == b[c]["answer"] for c in a)


KILLED = """
import os, signal, sys
from pathlib import Path
from llmfti.pipelines import ray_engine
from llmfti.pipelines.feature import ingest

def die_before_commit(tbl, fragments, replaced, properties):
    files = [f.files[0].path for f in fragments]
    data = Path(tbl.to_lance().uri) / "data"
    assert files and all((data / name).is_file() for name in files)  # the workers wrote their fragments
    print(len(fragments), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the driver dies before its commit

ray_engine._commit_fragments = die_before_commit
ingest("docs", [sys.argv[1]], home=sys.argv[2], engine="ray", ray_address=sys.argv[3])
"""


def test_a_run_killed_before_the_driver_commits_leaves_the_previous_commit(ray_address, tmp_path):
    from llmfti.pipelines.feature import ingest
    from llmfti.store import FeatureStore

    docs = make_corpus(tmp_path / "corpus", 4)
    home = tmp_path / "home"
    first = ingest("docs", [str(docs)], home=home, config=config(), engine="ray")
    fg = FeatureStore(home).feature_group("docs")
    version, rows = fg.table().version, fg.table().count_rows()
    data_dir = Path(fg.table().to_lance().uri) / "data"
    files_before = set(os.listdir(data_dir))
    make_corpus(tmp_path / "more", 6)
    for p in (tmp_path / "more").iterdir():
        write(docs / f"x-{p.name}", p.read_text())
    write(docs / "doc01.md", "# Replaced\n\nA changed document whose old chunks the dead run meant to delete.\n")

    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED), str(docs), str(home), ray_address], capture_output=True, text=True,
                          timeout=300, cwd=str(TESTS))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert int(proc.stdout.strip()) >= 1
    fg = FeatureStore(home).feature_group("docs")
    assert fg.table().version == version and fg.table().count_rows() == rows  # the previous commit, whole
    assert set(os.listdir(data_dir)) > files_before  # orphaned fragment files exist, and nothing reads them
    old = [r["text"] for r in fg.read(columns=["doc_id", "text"]).to_pylist() if r["doc_id"] == "doc01.md"]
    assert old and not any("dead run" in t for t in old)  # the replaced document's old chunks are still there

    again = ingest("docs", [str(docs)], home=home, engine="ray")  # a rerun finishes the job
    assert again.committed and again.documents["added"] == 6 and again.documents["updated"] == 1
    assert again.chunks_written > 0 and first.chunks_written > 0
    new = [r["text"] for r in fg.read(columns=["doc_id", "text"]).to_pylist() if r["doc_id"] == "doc01.md"]
    assert len(new) == 1 and "dead run" in new[0]


def test_cli_ingest_engine_ray(ray_address, tmp_path):
    from typer.testing import CliRunner

    from llmfti.cli import app
    from llmfti.errors import ConfigError

    runner = CliRunner()
    docs = make_corpus(tmp_path / "corpus", 3)
    home = str(tmp_path / "home")
    result = runner.invoke(app, ["--home", home, "ingest", str(docs), "-f", "docs", "--set", "embedder.model=hash-32", "--engine", "ray",
                                 "--ray-address", ray_address, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["committed"] is True
    wrong = runner.invoke(app, ["--home", home, "ingest", str(docs), "-f", "docs", "--ray-address", "auto"])
    assert isinstance(wrong.exception, ConfigError) and "--engine ray" in str(wrong.exception)


def test_batch_inference_on_ray_answers_like_local_and_logs_each_prediction(ray_address, tmp_path):
    from llmfti.pipelines.batch_inference import batch_infer
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    home = make_home(tmp_path)
    deploy(home, tmp_path, force=True)
    questions = ["What does the with statement do?", "How does a for loop work?", "What do generators yield?", "while loops?"]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"question": q}) + "\n" for q in questions))
    local = batch_infer("docs-qa", tmp_path / "q.jsonl", tmp_path / "local.jsonl", home=home, concurrency=1)
    on_ray = batch_infer("docs-qa", tmp_path / "q.jsonl", tmp_path / "ray.jsonl", home=home, engine="ray", ray_address=ray_address, concurrency=1)
    assert on_ray.ok == local.ok == 4 and on_ray.engine == "ray"
    a = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert [(x["line"], x["answer"], x["versions"]) for x in a] == [(y["line"], y["answer"], y["versions"]) for y in b]
    log = InferenceLog(FeatureStore(home), maintenance=False)
    try:
        rows = [log.query(request_id=y["request_id"], limit=None) for y in b]
    finally:
        log.close()
    assert all(len(r) == 1 and r[0]["origin"] == "batch" and r[0]["status"] == "ok" for r in rows)


@pytest.mark.slow
def test_real_embedder_vectors_agree_within_float_tolerance(ray_address, tmp_path):
    """The embedded default (all-MiniLM-L6-v2) in a Ray actor against the same model in this process."""
    from llmfti.config import FeatureConfig
    from llmfti.pipelines.feature import ingest

    docs = make_corpus(tmp_path / "corpus", 4)
    cfg = FeatureConfig(embedder={"dtype": "float32"}, chunker={"chunk_tokens": 64, "overlap": 8})
    ingest("docs", [str(docs)], home=tmp_path / "l", config=cfg)
    ingest("docs", [str(docs)], home=tmp_path / "r", config=cfg, engine="ray")
    a, b = table_rows(tmp_path / "l"), table_rows(tmp_path / "r")
    assert set(a) == set(b)
    assert max(float(np.max(np.abs(np.asarray(a[c]["vector"]) - np.asarray(b[c]["vector"])))) for c in a) < 1e-4
