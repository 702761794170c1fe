"""A process SIGKILLed in the middle of an ingest leaves the store readable at its last commit, and a
re-run completes with nothing lost or duplicated."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import write

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from llmfti.config import FeatureConfig
    from llmfti.pipelines import feature as ingest_mod
    from llmfti.pipelines.feature import ingest as run_ingest
    from llmfti.store import FeatureStore
    from llmfti.testing import HashEmbedder

    class SlowEmbedder(HashEmbedder):
        def _encode(self, texts):
            print("EMBEDDING", flush=True)
            time.sleep(float(sys.argv[3]))
            return super()._encode(texts)

    real_commit = ingest_mod.commit_rows
    def announced_commit(*args, **kw):
        print("COMMITTING", flush=True)
        return real_commit(*args, **kw)
    ingest_mod.commit_rows = announced_commit

    fg = FeatureStore(sys.argv[1]).feature_group("docs", must_exist=False)
    cfg = FeatureConfig(embedder={"model": "hash-64", "batch_size": 4}, chunker={"chunk_tokens": 24, "overlap": 4})
    run_ingest(fg, [sys.argv[2]], config=cfg, embedder=SlowEmbedder(64))
    print("DONE", flush=True)
    """
)


def make_corpus(root: Path, n: int, tag: str) -> None:
    for i in range(n):
        write(root / f"doc{i:03d}.md", f"# Doc {i}\n\n" + " ".join(f"{tag} word{j} of document {i}." for j in range(30)))


def run_and_kill(home: Path, corpus: Path, marker: str, delay: float, script: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(home), str(corpus), str(delay)], stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    for line in proc.stdout:
        if marker in line or time.time() > deadline:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def rows(home):
    from llmfti.store import FeatureStore

    fg = FeatureStore(home).feature_group("docs")
    table = fg.read(columns=["chunk_id", "doc_id", "text"])
    return fg, sorted(zip(table.column("chunk_id").to_pylist(), table.column("text").to_pylist()))


def complete(home, corpus, script):
    out = subprocess.run([sys.executable, str(script), str(home), str(corpus), "0"], capture_output=True, text=True, timeout=300)
    assert "DONE" in out.stdout, out.stderr


@pytest.mark.parametrize("marker", ["EMBEDDING", "COMMITTING"])
def test_sigkill_mid_ingest_then_rerun(tmp_path, marker):
    script = tmp_path / "ingest_script.py"
    script.write_text(SCRIPT)
    corpus = tmp_path / "corpus"
    make_corpus(corpus, 12, "first")
    home = tmp_path / "home"
    complete(home, corpus, script)
    fg, committed = rows(home)
    last_commit = fg.table().version

    # Change every document, then kill the re-ingest mid-way.
    make_corpus(corpus, 12, "second")
    run_and_kill(home, corpus, marker, 0.3, script)
    fg, after_kill = rows(home)  # readable
    version = fg.table().version
    if version == last_commit:
        assert after_kill == committed  # killed before the commit: the store is exactly as it was
    else:
        assert all("second" in text for _, text in after_kill)  # the one commit landed whole, never half
    assert len({c for c, _ in after_kill}) == len(after_kill)

    complete(home, corpus, script)
    _, final = rows(home)
    reference_home = tmp_path / "reference"
    complete(reference_home, corpus, script)
    _, expected = rows(reference_home)
    assert final == expected  # nothing lost, nothing duplicated
    assert all("second" in text for _, text in final)
