"""bench/growth.py builds its synthetic inference log through the log's own schema: a column added to
the log later (as `origin` was) must not break the benchmark (the 1M run crashed on it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_growth", REPO / "bench" / "growth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_synthetic_log_fills_every_column_of_the_current_schema(tmp_path):
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog, log_schema

    store = FeatureStore(tmp_path / "home")
    _bench().build_log(store, 120, seed=0)
    log = InferenceLog(store, maintenance=False)
    table = log.table.table()
    assert table.count_rows() == 120
    assert set(table.schema.names) == set(log_schema().names)
    assert len(log.query("d0", limit=20)) == 20
