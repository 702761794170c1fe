"""The embedded default runs without sentence-transformers and makes the same vectors, bit for bit.

The plain encoder (llmfti.models.plain_encoder) replaces `SentenceTransformer.encode` for plain
folders to save its imports on every cold start; it may only do so if no stored vector changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llmfti.models.defaults import packaged_embedder_dir
from llmfti.models.embedders import SentenceTransformerEmbedder
from llmfti.models.plain_encoder import plain_pipeline

TEXTS = [
    "",
    "x",
    "How does Dijkstra's algorithm find shortest paths?",
    "Unicode: naïve café — 東京 — ∑ x² ≥ 0",
    "A long chunk that sentence-transformers truncates at max_seq_length. " * 60,
    "def f(a, b=2, *args, **kwargs):\n    return a + b  # code, with symbols",
] + [f"chunk {i}: " + "word " * (i * 7 % 90) for i in range(40)]


def _reference(dtype: str, texts: list[str] = TEXTS) -> np.ndarray:
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(packaged_embedder_dir()), device="cpu", local_files_only=True).to(getattr(torch, dtype)).eval()
    out = np.empty((len(texts), 384), dtype=np.float32)
    order = SentenceTransformerEmbedder(str(packaged_embedder_dir()), "all-MiniLM-L6-v2").batch_order(texts)  # embed()'s batches
    for start in range(0, len(order), 16):
        idx = order[start : start + 16]
        with torch.inference_mode():
            vecs = model.encode([texts[i] for i in idx], batch_size=len(idx), convert_to_tensor=True,
                                normalize_embeddings=True, show_progress_bar=False)
        out[idx] = vecs.float().cpu().numpy()
    return out


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_plain_encoder_makes_sentence_transformers_vectors_bit_for_bit(dtype):
    emb = SentenceTransformerEmbedder(str(packaged_embedder_dir()), "all-MiniLM-L6-v2", dtype=dtype, device="cpu")
    assert emb.runtime == "torch"
    got = emb.embed(TEXTS, batch_size=16)
    assert emb.runtime == "torch" and emb._model is None
    assert np.array_equal(got, _reference(dtype))
    assert abs(float(np.linalg.norm(got[3])) - 1.0) < 1e-2  # bf16 rounds the unit vector


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_batches_without_padding_are_bit_for_bit_too(dtype):
    """No padded token in a batch: transformers passes no attention mask at all (another kernel path)."""
    texts = ["the same length, word for word"] * 5 + ["one"]
    emb = SentenceTransformerEmbedder(str(packaged_embedder_dir()), "all-MiniLM-L6-v2", dtype=dtype, device="cpu")
    got = np.concatenate([emb.embed(texts[:5], batch_size=16), emb.embed(texts[5:], batch_size=16)])
    want = np.concatenate([_reference(dtype, texts[:5]), _reference(dtype, texts[5:])])
    assert np.array_equal(got, want)


def test_the_forced_library_runtime_gives_the_same_vectors_and_fingerprint(monkeypatch):
    plain = SentenceTransformerEmbedder(str(packaged_embedder_dir()), "all-MiniLM-L6-v2", dtype="float32", device="cpu")
    monkeypatch.setenv("LLMFTI_EMBEDDER_RUNTIME", "sentence-transformers")
    library = SentenceTransformerEmbedder(str(packaged_embedder_dir()), "all-MiniLM-L6-v2", dtype="float32", device="cpu")
    assert library.runtime == "sentence-transformers"
    a = library.embed(TEXTS[:8])
    assert library._model is not None and library._plain is None
    monkeypatch.delenv("LLMFTI_EMBEDDER_RUNTIME")
    assert np.array_equal(plain.embed(TEXTS[:8]), a)
    # Feature groups written by either runtime stay readable by the other.
    assert plain.fingerprint == library.fingerprint


def _copy_model(tmp_path: Path) -> Path:
    dest = tmp_path / "model"
    shutil.copytree(packaged_embedder_dir(), dest)
    return dest


@pytest.mark.parametrize("change", ["cls pooling", "extra module", "prompt", "lower case", "other architecture", "too long",
                                    "other activation", "relative positions", "weights not in safetensors", "sizes left to defaults"])
def test_anything_but_the_plain_pipeline_keeps_sentence_transformers(tmp_path, change):
    folder = _copy_model(tmp_path)
    assert plain_pipeline(folder) is not None

    def edit(name, fn):
        path = folder / name
        path.write_text(json.dumps(fn(json.loads(path.read_text()))))

    if change == "cls pooling":
        edit("1_Pooling/config.json", lambda c: {**c, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    elif change == "extra module":
        edit("modules.json", lambda m: m + [{"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}])
    elif change == "prompt":
        edit("config_sentence_transformers.json", lambda c: {**c, "prompts": {"query": "query: "}, "default_prompt_name": "query"})
    elif change == "lower case":
        edit("sentence_bert_config.json", lambda c: {**c, "do_lower_case": True})
    elif change == "other architecture":
        edit("config.json", lambda c: {**c, "model_type": "roberta"})
    elif change == "too long":
        edit("sentence_bert_config.json", lambda c: {**c, "max_seq_length": 4096})
    elif change == "other activation":
        edit("config.json", lambda c: {**c, "hidden_act": "gelu_new"})
    elif change == "relative positions":
        edit("config.json", lambda c: {**c, "position_embedding_type": "relative_key"})
    elif change == "sizes left to defaults":
        edit("config.json", lambda c: {k: v for k, v in c.items() if k != "intermediate_size"})
    elif change == "weights not in safetensors":
        (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    assert plain_pipeline(folder) is None
    assert SentenceTransformerEmbedder(str(folder), "copy").runtime == "sentence-transformers"


def test_embedding_with_the_default_does_not_import_sentence_transformers(tmp_path):
    code = (
        "import sys\n"
        "from llmfti.config.features import EmbedderConfig\n"
        "from llmfti.models.embedders import load_embedder\n"
        "e = load_embedder(EmbedderConfig())\n"
        "v = e.embed(['hello world'])\n"
        "print(v.shape, 'sentence_transformers' in sys.modules, 'sklearn' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["(1,", "384)", "False", "False", "False"]
