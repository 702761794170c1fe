"""bench/growth.py and bench/monitor.py build synthetic inference logs through the log's own schema: a column added to
the log later (as `origin` was) must not break the benchmark (the 1M run crashed on it)."""

from __future__ import annotations

from conftest import load_bench


def _bench():
    return load_bench("growth")


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


def test_the_monitor_benchmark_writes_rows_of_the_current_log_schema(tmp_path):
    """bench/monitor.py writes its synthetic rows column by column: they must follow the log's schema
    as it is now (the full run crashed on the `origin` column added for batch inference)."""
    bench = load_bench("monitor")
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    home = tmp_path / "home"
    bench.write_rows(home, 50, bench.prepare_home(home), batch=20)
    table = InferenceLog(FeatureStore(home), maintenance=False).table.table()
    assert table.count_rows() == 50
    assert len(table.to_arrow()["query_vector"][0]) == 64
