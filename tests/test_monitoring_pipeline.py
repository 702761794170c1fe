"""The monitoring pipeline end to end on a real home: the served query vector is logged by the online
pipeline; `monitor` reads the log and the feature store and flags a real query shift (not a
same-distribution window), a latency regression in one stage, failing and weak topics and ungrounded
answers; eval/td/window baselines; `llmfti monitor` exits 1 on an alert and writes a small,
self-contained HTML report."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from agent_fixtures import deploy, make_home
from conftest import write

# Synthetic queries: each topic has its own vocabulary, so the hash embedder puts topics apart.
TOPICS = {
    "loops": "for while loop iterate iterable range break continue repeat condition".split(),
    "with": "with statement context manager exit enter block resource close file".split(),
    "generators": "generator yield lazily values state next iterator send expression suspend".split(),
    "cooking": "recipe bake oven flour sugar butter dough knead simmer sauce".split(),
}
FILLER = "how do what does a the in python work i use".split()
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
STAGE_MS = {"on_demand": 0.05, "embed_query": 0.4, "retrieve": 3.0, "build_prompt": 1.0, "generate": 120.0}


def question(rng: random.Random, topic: str) -> str:
    words = rng.sample(TOPICS[topic], rng.randint(3, 6)) + rng.sample(FILLER, 2)
    rng.shuffle(words)
    return " ".join(words) + "?"


def log_rows(home: Path, topics: list[str], n: int, start: datetime, *, seed: int = 0, version: int = 1, deployment: str = "docs-qa",
             slow_stage: str | None = None, bad_topic: str | None = None, chunks: list[dict] | None = None, step_s: float = 30.0) -> list[dict]:
    """Append `n` inference-log rows as the online pipeline writes them (hash-64 query vectors, like
    the docs:1 feature group's embedder). `bad_topic`'s requests fail or retrieve weakly, and its
    answers share nothing with their contexts; `slow_stage` is 5x slower."""
    from llmfti.models.hash_embedder import HashEmbedder
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    rng = random.Random(seed)
    embedder = HashEmbedder(64)
    store = FeatureStore(home)
    if chunks is None:
        chunks = store.feature_group("docs:1").read(columns=["chunk_id", "text"]).to_pylist()
    commit = store.feature_group("docs:1").resolve_commit(None)
    log = InferenceLog(store)
    rows = []
    for i in range(n):
        topic = topics[i % len(topics)]
        q = question(rng, topic)
        bad = topic == bad_topic
        timings = {s: ms * rng.uniform(0.8, 1.25) * (5 if s == slow_stage else 1) for s, ms in STAGE_MS.items()}
        timings["total"] = sum(timings.values())
        chunk = chunks[i % len(chunks)]
        status = "GenerationFailed" if bad and i % 3 == 0 else "ok"
        score = rng.uniform(0.02, 0.15) if bad else rng.uniform(0.5, 0.9)
        row = {
            "request_id": f"{deployment}-{seed}-{start.timestamp():.0f}-{i}", "deployment": deployment, "deployment_version": version, "model": "tiny:1",
            "feature_group": "docs:1", "commit": commit, "commit_evaluated": True, "prompt_mode": "local", "request": {"question": q},
            "features": {}, "retrieved": [{"chunk_id": chunk["chunk_id"], "score": score}], "prompt_fingerprint": "fp", "prompt_text": None,
            "output": "" if status != "ok" else ("bananas orbit saturn quietly tonight" if bad else chunk["text"][:80]),
            "prompt_tokens": 60, "completion_tokens": 12, "timings_ms": timings, "status": status, "error": "",
            "query_vector": embedder.embed_query(q), "time": (start + timedelta(seconds=step_s * i)).isoformat(),
        }
        log.append(row)
        rows.append(row)
    log.close()
    return rows


@pytest.fixture(scope="module")
def mon_home(tmp_path_factory) -> Path:
    """A deployment with two logged windows: a baseline day of three topics and a current day in
    which the same topics are asked (control) ... and a later day of cooking questions (shift)."""
    root = tmp_path_factory.mktemp("monitor")
    home = make_home(root)
    deploy(home, root, name="docs-qa", gate_suites=[])
    log_rows(home, ["loops", "with", "generators"], 150, T0, seed=1)  # baseline: Nov 1
    log_rows(home, ["loops", "with", "generators"], 150, T0 + timedelta(days=1), seed=2)  # same distribution: Nov 2
    log_rows(home, ["cooking"], 150, T0 + timedelta(days=2), seed=3)  # another topic: Nov 3
    return home


def run(home, **kw):
    from llmfti.pipelines.monitoring import monitor

    kw.setdefault("permutations", 200)
    return monitor(home, "docs-qa", **kw)


def day(n: int) -> str:
    return (T0 + timedelta(days=n)).isoformat()


def names(result) -> set[str]:
    return {a["name"] for a in result["alerts"]}


def test_online_pipeline_logs_the_served_query_vector(tmp_path):
    from llmfti.pipelines.inference.online import invoke
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog
    from llmfti.testing.scripted_generator import ScriptedGenerator

    home = make_home(tmp_path)
    deploy(home, tmp_path, name="vec", on_demand=["normalized_question"])
    runtime = build_runtime(home, DeploymentStore(home).active("vec"), RuntimeCache(), generator_override=ScriptedGenerator(["ok"]))
    log = InferenceLog(FeatureStore(home))
    out = invoke(runtime, {"question": "  How do   generators yield?"}, log=log)
    log.close()
    log = InferenceLog(FeatureStore(home))
    row = log.query("vec", request_id=out["request_id"], vectors=True)[0]
    plain = log.query("vec", request_id=out["request_id"])[0]
    log.close()
    expected = runtime.embedder.embed_query("How do generators yield?")  # the normalized question is what is embedded
    assert len(row["query_vector"]) == 64
    np.testing.assert_allclose(row["query_vector"], expected, rtol=1e-6)
    assert "query_vector" not in plain  # listings (llmfti logs) leave the vector out


def test_a_log_table_without_the_vector_column_gains_it(tmp_path):
    """Homes written before query vectors were logged keep their rows; new rows carry vectors."""
    import pyarrow as pa

    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import LOG_TABLE, InferenceLog, log_schema

    store = FeatureStore(tmp_path / "home")
    old = pa.schema([f for f in log_schema() if f.name != "query_vector"])
    store.db.create_table(LOG_TABLE, schema=old).add(pa.Table.from_pylist(
        [{"request_id": "old", "time": T0, "deployment": "d", "status": "ok", "request": "{}"}], schema=old))
    log = InferenceLog(store)
    log.append({"request_id": "new", "deployment": "d", "status": "ok", "request": {}, "query_vector": np.ones(4, dtype=np.float32)})
    log.close()
    rows = {r["request_id"]: r for r in InferenceLog(store).query("d", limit=None, vectors=True)}
    assert rows["old"]["query_vector"] is None and rows["new"]["query_vector"] == [1.0] * 4


def test_time_window_is_pushed_into_the_query(mon_home):
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    log = InferenceLog(FeatureStore(mon_home))
    rows = log.query("docs-qa", since=day(1), until=day(2), limit=None, columns=["request_id"])
    assert len(rows) == 150 and all(day(1) <= r["time"].isoformat() < day(2) for r in rows)
    assert log.scan("docs-qa", day(2), day(3), ["status"]).num_rows == 150
    log.close()


def test_a_real_query_shift_is_flagged(mon_home):
    result = run(mon_home, since=day(2), until=day(3), baseline=f"window:{day(0)}..{day(1)}").result
    d = result["drift"]
    assert d["computed"] and d["n_baseline"] == 150 and d["n_current"] == 150
    assert d["mmd"]["p_value"] < 0.01 and d["classifier"]["auc"] > 0.9
    assert {"query_drift_mmd", "query_drift_auc"} <= names(result)


def test_a_same_distribution_window_is_not_flagged(mon_home):
    result = run(mon_home, since=day(1), until=day(2), baseline=f"window:{day(0)}..{day(1)}").result
    d = result["drift"]
    assert d["computed"] and d["mmd"]["p_value"] > 0.05 and d["classifier"]["auc"] < 0.75
    assert not names(result) & {"query_drift_mmd", "query_drift_auc", "query_length_shift"}
    assert result["alerts"] == [], result["alerts"]


def test_eval_suite_baseline_is_embedded_with_the_feature_group_embedder(mon_home, tmp_path):
    rng = random.Random(7)
    cases = [{"id": f"c{i}", "question": question(rng, t), "reference": "r", "source_ids": ["with.md"]}
             for i, t in enumerate(["loops", "with", "generators"] * 20)]
    write(tmp_path / "evals" / "topics" / "cases.jsonl", "".join(json.dumps(c) + "\n" for c in cases))
    write(tmp_path / "evals" / "topics" / "gate.yaml", "thresholds: {hit_at_k: 0.5}\n")
    same = run(mon_home, since=day(1), until=day(2), baseline="eval:topics", suites_root=tmp_path).result["drift"]
    shifted = run(mon_home, since=day(2), until=day(3), baseline="eval:topics", suites_root=tmp_path).result["drift"]
    assert same["n_baseline"] == 60 and same["mmd"]["p_value"] > 0.05
    assert shifted["mmd"]["p_value"] < 0.01 and shifted["classifier"]["auc"] > 0.9


def test_training_dataset_baseline_reads_its_questions(mon_home, monkeypatch):
    """td:NAME:N takes the dataset's question column (stubbed here: building a dataset needs a model)."""
    from llmfti.store import FeatureStore

    rng = random.Random(9)
    examples = [{"question": question(rng, "cooking"), "position": i} for i in range(40)]
    asked = []

    class FakeDataset:
        def examples(self, split=None, columns=None):
            asked.append(columns)
            return examples

    monkeypatch.setattr(FeatureStore, "training_dataset", lambda self, ref: asked.append(ref) or FakeDataset())
    d = run(mon_home, since=day(2), until=day(3), baseline="td:cooking-qa:1").result["drift"]
    assert asked == ["cooking-qa:1", ["question"]]
    assert d["baseline"] == "td:cooking-qa:1" and d["n_baseline"] == 40 and d["mmd"]["p_value"] > 0.05  # cooking vs cooking


def test_latency_regression_in_one_stage_is_flagged(tmp_path):
    home = make_home(tmp_path)
    deploy(home, tmp_path, name="docs-qa")
    log_rows(home, ["loops", "with"], 60, T0, seed=1)
    log_rows(home, ["loops", "with"], 60, T0 + timedelta(days=1), seed=2, slow_stage="generate")
    result = run(home, since=day(1), until=day(2)).result  # reference: the previous day
    regs = result["latency_regressions"]
    assert [r["stage"] for r in regs if r["kind"] == "regression"] == ["generate", "total"], regs
    assert result["reference"]["requests"] == 60
    assert "latency" in names(result)
    quiet = run(home, since=day(0), until=day(1)).result
    assert quiet["latency_regressions"] == [] and quiet["reference"] is None
    limit = run(home, since=day(0), until=day(1), thresholds=_thresholds(latency_p95_ms={"retrieve": 1.0})).result
    assert [(r["stage"], r["kind"]) for r in limit["latency_regressions"]] == [("retrieve", "absolute")]


def _thresholds(**kw):
    from llmfti.monitoring.alerts import AlertThresholds

    return AlertThresholds(**kw)


def test_worst_topic_weak_context_errors_and_grounding(tmp_path):
    home = make_home(tmp_path)
    deploy(home, tmp_path, name="docs-qa")
    log_rows(home, ["loops", "with", "generators", "cooking"], 240, T0, seed=4, bad_topic="cooking")
    result = run(home).result
    def is_cooking(topic):
        return all(any(w in ex.split() or w + "?" in ex.split() for w in TOPICS["cooking"]) for ex in topic["examples"])

    top = result["topics"][0]
    assert is_cooking(top) and len(top["examples"]) == 3 and top["bad_share"] > 0.9, result["topics"]
    # k-means may split a topic in two; every badly served cluster is a cooking one, and only those.
    assert all(is_cooking(t) == (t["bad_share"] > 0.5) for t in result["topics"]), result["topics"]
    assert all(t["bad_share"] < 0.2 for t in result["topics"] if not is_cooking(t))
    v = result["versions"]["1"]
    assert v["requests"] == 240 and v["by_status"] == {"ok": 220, "GenerationFailed": 20}
    assert v["retrieval"]["weak_or_none_share"] == pytest.approx(40 / 220)  # cooking answers that did not fail
    assert result["grounding"]["ungrounded_share"] == pytest.approx(40 / 220)
    assert {"error_rate"} <= names(result) and "weak_context" not in names(result)  # 18% < 30%
    assert "weak_context" in names(run(home, thresholds=_thresholds(max_weak_share=0.1)).result)


def test_feature_group_change_between_commits(tmp_path):
    from llmfti.pipelines.feature import ingest as run_ingest
    from llmfti.store import FeatureStore

    home = make_home(tmp_path)
    deploy(home, tmp_path, name="docs-qa")
    log_rows(home, ["loops"], 20, T0, seed=1)
    write(tmp_path / "corpus" / "async.md", "# Async\n\nAn async function returns a coroutine awaited with await.\n")
    write(tmp_path / "corpus" / "loops.md", "# Loops\n\nLoops repeat. A for loop iterates; break leaves it early.\n")
    (tmp_path / "corpus" / "gen.md").unlink()
    assert run_ingest(FeatureStore(home).feature_group("docs"), [str(tmp_path / "corpus")], sync=True).committed
    change = run(home).result["feature_group_change"]
    docs = change["documents"]
    assert change["computed"] and change["to_commit"] > change["from_commit"]
    assert (docs["added_ids"], docs["updated_ids"], docs["deleted_ids"]) == (["async.md"], ["loops.md"], ["gen.md"])
    emb = change["embeddings"]
    assert emb["chunks_changed_share"] > 0 and emb["centroid_cosine_distance"] > 0 and emb["mmd2"] > 0
    same = run(home, commits=f"{change['to_commit']}..latest").result["feature_group_change"]
    assert same["documents"]["unchanged"] == 3 and same["documents"]["added"] == same["documents"]["deleted"] == 0
    assert same["embeddings"]["mmd2"] == 0 and same["embeddings"]["centroid_cosine_distance"] == 0


def test_cli_exits_1_on_an_alert_and_writes_a_self_contained_report(mon_home, tmp_path):
    from typer.testing import CliRunner

    from llmfti.cli import app

    report = tmp_path / "out" / "monitor.html"
    args = ["--home", str(mon_home), "monitor", "docs-qa", "--since", day(2), "--until", day(3), "--baseline", f"window:{day(0)}..{day(1)}",
            "--report", str(report), "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    assert {"query_drift_mmd", "query_drift_auc"} <= names(doc) and doc["report"] == str(report)
    html = report.read_text()
    assert report.stat().st_size < 1_000_000
    assert html.count("src='data:image/png;base64,") >= 4 and "<script" not in html.lower() and "http" not in html.lower()
    assert "query_drift_mmd" in html and "at most 2000" in html
    ok = CliRunner().invoke(app, ["--home", str(mon_home), "monitor", "docs-qa", "--since", day(1), "--until", day(2),
                                  "--baseline", f"window:{day(0)}..{day(1)}", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["alerts"] == []


def test_cli_usage_errors(mon_home):
    """Bad options are usage errors (exit 2), an unknown deployment is not found (3): the codes
    `llmfti.cli.main` exits with for the error each raises."""
    from typer.testing import CliRunner

    from llmfti.cli import app

    def code(*args) -> int:
        res = CliRunner().invoke(app, ["--home", str(mon_home), "monitor", *args, "--json"])
        return res.exception.exit_code if res.exception is not None and not isinstance(res.exception, SystemExit) else res.exit_code

    for args in (["--baseline", "nope:x"], ["--since", "yesterday"], ["--baseline", "window:2026-11-02..2026-11-01"], ["--set", "alpha=2"]):
        assert code("docs-qa", *args) == 2, args
    assert code("nope") == 3
