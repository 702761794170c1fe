"""The monitoring statistics on synthetic data (hash-embedded questions, no store): a real query shift
is flagged, same-distribution windows are not (false-alarm rate measured over 100 seeded draws, at or
below the nominal alpha), query-length shift, latency regression in one stage, grounding, topics and
the alert thresholds."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from test_monitoring_pipeline import TOPICS, question

PYTHON = ["loops", "with", "generators"]


def embed(questions):
    from llmfti.models.hash_embedder import HashEmbedder

    return HashEmbedder(64).embed(questions)


def window(rng: random.Random, n: int, topics: list[str]) -> np.ndarray:
    return embed([question(rng, rng.choice(topics)) for _ in range(n)])


def drift_alerts(base, cur, seed: int, alpha: float = 0.05) -> tuple[set[str], dict]:
    """The drift alerts `llmfti monitor` would raise for these two windows, and the drift numbers."""
    from llmfti.monitoring.alerts import AlertThresholds, check_alerts
    from llmfti.monitoring.drift import domain_classifier_auc, mmd_test

    drift = {"computed": True, "mmd": mmd_test(base, cur, permutations=199, seed=seed), "classifier": domain_classifier_auc(base, cur, seed=seed)}
    return {a["name"] for a in check_alerts({"drift": drift}, AlertThresholds(alpha=alpha))}, drift


def test_queries_from_another_topic_are_flagged():
    rng = random.Random(0)
    names, drift = drift_alerts(window(rng, 60, PYTHON), window(rng, 60, ["cooking"]), seed=0)
    assert names == {"query_drift_mmd", "query_drift_auc"}
    assert drift["mmd"]["p_value"] == pytest.approx(1 / 200) and drift["classifier"]["auc"] > 0.95


def test_false_alarm_rate_over_100_same_distribution_draws_is_at_most_alpha():
    """Same generator on both sides, 100 seeded draws of 60 + 60 queries: the share of draws with any
    drift alert (MMD or classifier) stays at or below alpha = 0.05, and the MMD p-values look uniform
    (a valid test), so the threshold means what it says."""
    from scipy.stats import kstest

    alpha, draws = 0.05, 100
    alarms, p_values = 0, []
    for d in range(draws):
        rng = random.Random(10_000 + d)
        names, drift = drift_alerts(window(rng, 60, PYTHON), window(rng, 60, PYTHON), seed=d, alpha=alpha)
        alarms += bool(names)
        p_values.append(drift["mmd"]["p_value"])
    assert alarms / draws <= alpha, f"false-alarm rate {alarms / draws:.2f} over {draws} draws"
    assert kstest(p_values, "uniform").pvalue > 0.01
    # ... and the same test sees a partial shift: a quarter of the queries from another topic.
    hits = sum(bool(drift_alerts(window(random.Random(d), 150, PYTHON), window(random.Random(50 + d), 150, PYTHON + ["cooking"]), seed=d)[0])
               for d in range(10))
    assert hits >= 8


def test_mmd_permutation_p_value_bounds_and_identical_windows():
    from llmfti.monitoring.drift import mmd_test

    x = np.random.default_rng(0).normal(size=(30, 8))
    same = mmd_test(x, x.copy(), permutations=99)
    assert same["p_value"] > 0.5 and same["mmd2_unbiased"] < 0.05
    shifted = mmd_test(x, x + 3.0, permutations=99)
    assert shifted["p_value"] == pytest.approx(0.01) and shifted["mmd2_unbiased"] > 0.5
    with pytest.raises(ValueError):
        mmd_test(x, np.zeros((5, 4)))


def test_domain_classifier_pca_is_fitted_on_both_windows():
    """The new window's own direction must survive the projection: queries moving along a direction
    the baseline never varies in are found. A PCA fitted on the baseline alone drops that direction
    (zero variance there) and the windows look alike after it."""
    from sklearn.decomposition import PCA
    from sklearn.model_selection import cross_val_predict
    from sklearn.linear_model import RidgeClassifier
    from sklearn.metrics import roc_auc_score

    from llmfti.monitoring.drift import domain_classifier_auc

    rng = np.random.default_rng(1)
    base, cur = np.zeros((200, 80)), np.zeros((200, 80))
    base[:, :40] = rng.normal(size=(200, 40))
    cur[:, :40] = rng.normal(size=(200, 40))
    cur[:, 70] = 3.0 + 0.1 * rng.normal(size=200)  # a direction only the current window uses
    out = domain_classifier_auc(base, cur, max_components=20)
    assert out["components"] == 20 and out["auc"] > 0.95
    reference_only = PCA(n_components=20, random_state=0).fit(base)
    z, labels = reference_only.transform(np.vstack([base, cur])), np.repeat([0, 1], 200)
    blind = roc_auc_score(labels, cross_val_predict(RidgeClassifier(), z, labels, cv=5, method="decision_function"))
    assert blind < 0.7


def test_query_length_shift():
    from llmfti.monitoring.alerts import AlertThresholds, check_alerts
    from llmfti.monitoring.drift import length_shift

    rng = np.random.default_rng(2)
    short, long_ = rng.integers(4, 9, 300), rng.integers(12, 30, 300)
    out = length_shift(short, long_)
    assert out["p_value"] < 1e-6 and out["relative_change"] > 1.0
    assert length_shift(short, rng.integers(4, 9, 300))["p_value"] > 0.01
    drift = {"computed": True, "mmd": {"p_value": 0.5}, "classifier": None, "length": out}
    assert [a["name"] for a in check_alerts({"drift": drift}, AlertThresholds())] == ["query_length_shift"]


def _columns(n: int, stage_ms: dict[str, float], seed: int):
    import pyarrow as pa

    from llmfti.monitoring.serving import LogColumns

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        timings = {s: float(ms * rng.uniform(0.8, 1.2)) for s, ms in stage_ms.items()}
        rows.append({"request_id": f"r{i}", "time": None, "deployment_version": 1, "status": "ok", "timings_ms": json.dumps(timings),
                     "retrieved": "[]", "prompt_tokens": 10, "completion_tokens": None})
    table = pa.Table.from_pylist(rows, schema=pa.schema([("request_id", pa.string()), ("time", pa.timestamp("us", tz="UTC")),
                                                          ("deployment_version", pa.int32()), ("status", pa.string()), ("timings_ms", pa.string()),
                                                          ("retrieved", pa.string()), ("prompt_tokens", pa.int32()), ("completion_tokens", pa.int32())]))
    return LogColumns.from_arrow(table)


def test_latency_regression_flags_only_the_slower_stage():
    from llmfti.monitoring.serving import latency_regressions

    base = {"embed_query": 0.1, "retrieve": 3.0, "generate": 100.0}
    reference = _columns(50, base, 0)
    slower = _columns(50, {**base, "retrieve": 30.0, "embed_query": 0.4}, 1)  # embed_query 4x, but only 0.3 ms: noise
    regs = latency_regressions(slower, reference, ratio=1.5, min_ms=10)
    assert [(r["stage"], r["kind"]) for r in regs] == [("retrieve", "regression")] and regs[0]["ratio"] > 7
    assert latency_regressions(_columns(50, base, 2), reference, ratio=1.5, min_ms=10) == []
    assert np.isnan(slower.completion_tokens).all() and slower.n_retrieved.tolist() == [0] * 50


def test_grounding_score_is_the_share_of_answer_words_in_the_contexts():
    from llmfti.monitoring.grounding import grounding_score, grounding_summary

    ctx = ["Generators yield values lazily and keep their state between calls."]
    assert grounding_score("Generators yield values lazily.", ctx) == 1.0
    assert grounding_score("Bananas orbit Saturn quietly.", ctx) == 0.0
    assert grounding_score("They keep state; bananas too.", ctx) == pytest.approx(2 / 3)  # keep, state in; bananas out
    assert grounding_score("", ctx) is None and grounding_score("Generators yield.", []) == 0.0
    summary = grounding_summary([1.0, 0.0, None, 0.8], threshold=0.5)
    assert summary["answers"] == 3 and summary["ungrounded_share"] == pytest.approx(1 / 3) and summary["skipped"] == 1


def test_worst_topic_is_the_one_made_worse():
    from llmfti.monitoring.topics import worst_topics

    rng = random.Random(3)
    topics = [t for t in PYTHON + ["cooking"] for _ in range(40)]
    questions = [question(rng, t) for t in topics]
    bad = np.array([t == "with" and i % 4 != 0 for i, t in enumerate(topics)])  # 75 % of "with" questions served badly
    out = worst_topics(embed(questions), questions, bad=bad, error=bad, weak=np.zeros(len(bad), bool), k=4)
    worst = out[0]
    assert worst["bad_share"] > 0.6 and worst["error_rate"] == worst["bad_share"]
    assert all(any(w in q.rstrip("?").split() for w in TOPICS["with"]) for q in worst["examples"])
    assert all(t["bad_share"] < 0.3 for t in out[1:])


def test_alerts_respect_min_requests_and_thresholds_load_from_yaml(tmp_path):
    from llmfti.errors import ConfigError
    from llmfti.monitoring.alerts import check_alerts, load_thresholds

    path = tmp_path / "monitor.yaml"
    path.write_text("max_error_rate: 0.2\nlatency_p95_ms: {generate: 500}\n")
    t = load_thresholds(str(path), ["min_requests=10"])
    assert (t.max_error_rate, t.latency_p95_ms, t.min_requests, t.alpha) == (0.2, {"generate": 500}, 10, 0.05)
    version = {"requests": 9, "error_rate": 0.5, "retrieval": {"requests": 9, "weak_or_none_share": 1.0}}
    assert check_alerts({"versions": {"1": version}}, t) == []  # too few requests to alert on rates
    alerts = check_alerts({"versions": {"1": {**version, "requests": 10}}}, t)
    assert [a["name"] for a in alerts] == ["error_rate"] and alerts[0]["scope"] == "version 1"
    with pytest.raises(ConfigError):
        load_thresholds(None, ["max_auc=0.4"])
    with pytest.raises(ConfigError):
        load_thresholds(None, ["no_such_threshold=1"])
