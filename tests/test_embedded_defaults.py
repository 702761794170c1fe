"""The real embedded defaults: MiniLM ingest + search, and pull-defaults (GGUF import). Slow."""

import pytest

from llmfti.config import FeatureConfig
from llmfti.pipelines.feature import ingest as run_ingest

pytestmark = pytest.mark.slow


def test_minilm_ingest_and_search(store, corpus):
    fg = store.feature_group("docs", must_exist=False)
    s = run_ingest(fg, [str(corpus)], config=FeatureConfig(embedder={"model": "all-MiniLM-L6-v2"}))
    assert s.committed
    info = fg.describe()
    assert info["embedder"]["dimension"] == 384 and info["embedder"]["dtype"] in ("float32", "bfloat16")
    top = fg.search("What guarantees that cleanup code runs after a block?", k=1)["results"][0]
    assert top["doc_id"] == "with.md"
    # dtype is part of the fingerprint: another dtype is another embedder
    from llmfti.models.embedders import load_embedder

    other = "float32" if info["embedder"]["dtype"] == "bfloat16" else "bfloat16"
    e1 = load_embedder(FeatureConfig(embedder={"dtype": info["embedder"]["dtype"]}).embedder)
    e2 = load_embedder(FeatureConfig(embedder={"dtype": other}).embedder)
    assert e1.fingerprint == info["embedder"]["fingerprint"] != e2.fingerprint


def test_pull_defaults_is_idempotent(home):
    from llmfti.home import ProjectHome
    from llmfti.registry.defaults import pull_defaults

    first = pull_defaults(ProjectHome.at(home))  # a fresh home: both models are brought in
    assert {m["name"]: m["status"] for m in first} == {"all-MiniLM-L6-v2": "pulled", "SmolLM2-135M-Instruct": "imported"}
    gen_files = {p.name: p.stat().st_mtime_ns for p in (ProjectHome.at(home).models_dir / "base" / "SmolLM2-135M-Instruct").iterdir()}
    second = pull_defaults(ProjectHome.at(home))
    assert {m["status"] for m in second} == {"present"}
    assert second[1]["model_version"] == first[1]["model_version"]  # no second version registered
    # ... and nothing was rewritten: idempotent means untouched, not re-imported into the same place
    assert {p.name: p.stat().st_mtime_ns for p in (ProjectHome.at(home).models_dir / "base" / "SmolLM2-135M-Instruct").iterdir()} == gen_files
    gen = ProjectHome.at(home).models_dir / "base" / "SmolLM2-135M-Instruct"
    assert (gen / "model.safetensors").is_file() and (gen / "tokenizer_config.json").is_file()


def test_minilm_token_counts_are_raw():
    """tokenizer.json ships padding/truncation to 128; chunking must count real tokens."""
    from llmfti.models.embedders import load_embedder

    emb = load_embedder(FeatureConfig().embedder)
    assert len(emb.token_offsets("hello world")) == 2
    assert len(emb.token_offsets("word " * 300)) == 300


def test_the_default_embedder_resolves_from_a_plain_home_folder(tmp_path):
    """Library callers (bench/scale.py through check_deployment) pass a home as a plain folder: the
    default embedder must resolve the same as with a ProjectHome (it crashed on `models_dir`)."""
    from pathlib import Path

    from llmfti.home import ProjectHome
    from llmfti.models.embedders import resolve_embedder_path

    home = tmp_path / "home"
    pulled = Path(ProjectHome.at(home).models_dir) / "embedders" / "all-MiniLM-L6-v2"
    pulled.mkdir(parents=True)
    (pulled / "config.json").write_text("{}")
    assert resolve_embedder_path("all-MiniLM-L6-v2", home) == str(pulled)
    assert resolve_embedder_path("all-MiniLM-L6-v2", ProjectHome.at(home)) == str(pulled)
