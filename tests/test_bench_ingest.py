"""bench/ingest.py's raw baselines: sentence-transformers' own batches, and llmfti's (the like-for-like row)."""

from __future__ import annotations

import sys
import types

from conftest import load_bench


class RecordingModel:
    calls: list[list[str]] = []

    def __init__(self, *args, **kwargs):
        pass

    def to(self, dtype):
        return self

    def eval(self):
        return self

    def encode(self, texts, **kwargs):
        RecordingModel.calls.append(list(texts))


def test_the_raw_encode_over_llmfti_batches_encodes_exactly_those_batches(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=RecordingModel))
    bench = load_bench("ingest")
    texts = [f"t{i}" for i in range(7)]
    order = [6, 0, 5, 1, 4, 2, 3]
    RecordingModel.calls = []
    bench.time_raw_encode("folder", texts, "float32", 3, order)
    warm_up, *timed = RecordingModel.calls
    assert warm_up == texts[:3]
    assert timed == [["t6", "t0", "t5"], ["t1", "t4", "t2"], ["t3"]]
    RecordingModel.calls = []
    bench.time_raw_encode("folder", texts, "float32", 3)
    assert RecordingModel.calls[1:] == [texts]  # one call: sentence-transformers cuts its own batches
