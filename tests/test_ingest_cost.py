"""A re-ingest that changes nothing costs no model load: the embedder's weights are never loaded and
torch is never imported (checking the stored fingerprint needs the dtype, which the version pins), and
no table is opened: neither lancedb nor lance is imported (the metadata comes from its local copy and
the documents from the source keys, both valid while the tables' signatures are unchanged).
Speed itself is measured by bench/ingest.py --cli, not asserted here."""

import json
import subprocess
import sys

import numpy as np

from conftest import write
from llmfti.config import FeatureConfig
from llmfti.models.embedders import SentenceTransformerEmbedder, load_embedder
from llmfti.pipelines.feature import ingest as run_ingest


class WeightlessMiniLM(SentenceTransformerEmbedder):
    """The embedded default's files (so the same fingerprint), but random vectors and no weights: a test
    double that counts loads."""

    loads = 0

    def warm_up(self):
        WeightlessMiniLM.loads += 1
        self._resolve_runtime()
        self._dim = 384

    def _encode(self, texts):
        v = np.random.default_rng(len(texts)).standard_normal((len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def weightless(config):
    real = load_embedder(config.embedder)
    return WeightlessMiniLM(real.source, real.id, dtype=config.embedder.dtype)


def test_a_no_op_re_ingest_from_a_fresh_process_never_imports_torch_lance_or_loads_weights(home, corpus):
    config = FeatureConfig()  # the embedded default, dtype auto
    fg_first = run_ingest("docs", [str(corpus)], config=config, embedder=weightless(config), home=home)
    assert fg_first.committed
    script = (
        "import json, sys\n"
        f"sys.argv = ['llmfti', '--home', {str(home)!r}, 'ingest', {str(corpus)!r}, '-f', 'docs', '--json']\n"
        "from llmfti.cli import main\n"
        "try:\n    main()\n"
        "finally:\n"
        "    sys.stderr.write('\\nMODULES ' + json.dumps({m: m in sys.modules for m in ('torch', 'sentence_transformers', 'transformers', 'lancedb', 'lance', 'pandas')}) + '\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert not summary["committed"] and summary["documents"]["unchanged"] == 3
    modules = json.loads(proc.stderr.rsplit("MODULES ", 1)[1])
    assert modules == {"torch": False, "sentence_transformers": False, "transformers": False, "lancedb": False, "lance": False, "pandas": False}
    assert summary["commit"] == fg_first.commit  # the version it reports is the one the first run left


def test_weights_load_only_when_something_is_embedded(store, corpus):
    config = FeatureConfig(embedder={"dtype": "float32"})
    fg = store.feature_group("docs", must_exist=False)
    run_ingest(fg, [str(corpus)], config=config, embedder=weightless(config))
    WeightlessMiniLM.loads = 0
    again = weightless(config)
    assert not run_ingest(fg, [str(corpus)], embedder=again).committed and WeightlessMiniLM.loads == 0
    write(corpus / "new.md", "# New\n\nSomething to embed.\n")
    assert run_ingest(fg, [str(corpus)], embedder=again).committed and WeightlessMiniLM.loads == 1


def test_unchanged_documents_are_not_cleaned_again_and_a_stale_cache_is_never_trusted(store, corpus, hash_config, monkeypatch):
    import llmfti.pipelines.feature as feature
    from llmfti.store.source_keys import SourceKeys

    fg = store.feature_group("docs", must_exist=False)
    run_ingest(fg, [str(corpus)], config=hash_config)
    cleaned = []
    real_clean = feature.clean_text
    monkeypatch.setattr(feature, "clean_text", lambda text: cleaned.append(text) or real_clean(text))
    write(corpus / "with.md", "# The with statement\n\nEdited: a context manager wraps the block.\n")
    s = run_ingest(fg, [str(corpus)])
    assert s.documents["updated"] == 1 and len(cleaned) == 1  # only the edited document was cleaned
    # A cache that disagrees with the table (another writer changed the table) is checked, not trusted.
    keys = SourceKeys(fg).load()
    SourceKeys(fg).save({d: (k, "0" * 64) for d, (k, h) in keys.items()})
    cleaned.clear()
    again = run_ingest(fg, [str(corpus)])
    assert not again.committed and again.documents["unchanged"] == 3 and len(cleaned) == 3
    assert SourceKeys(fg).load() == keys  # repaired
