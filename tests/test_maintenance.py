"""Maintenance with a retention policy: compaction, incremental index updates, pruning that never
removes a pinned commit (tags, deployments and their rollback history, training datasets, eval
records, the window), time travel to every protected commit afterwards, and `history` saying what
was pruned."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from conftest import write
from llmfti.errors import ConfigError, NotFoundError
from llmfti.pipelines.feature import ingest as run_ingest
from llmfti.pipelines.maintenance import maintain, protected_commits
from llmfti.store.maintenance import RetentionPolicy, fragment_stats, plan_prune


def commits(store, corpus, cfg, n):
    """n ingest runs, each changing one document: returns (fg, {data commit: doc text at it})."""
    fg = store.feature_group("docs", must_exist=False)
    made = {}
    for i in range(n):
        write(corpus / "doc.md", f"# Doc\n\nVersion {i} of the document, word{i}.\n")
        s = run_ingest(fg, [str(corpus)], config=cfg)
        made[s.data_commit] = f"word{i}"
    return fg, made


def pin_everything(home, fg, made):
    """Pin four different data commits: a tag, a deployment (and its rollback history), an eval
    record and a training dataset; returns {commit: what pins it}."""
    from llmfti.config.deployments import DeploymentConfig
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.registry.evals import EvalRecord, EvalStore

    c = sorted(made)
    fg.tag(c[0], "release-1")
    deployments = DeploymentStore(home)
    for version_commit in (c[1], c[2]):  # v1 pinned c[1] (now only a rollback target), v2 pins c[2]
        cfg = DeploymentConfig(name="qa", model="tiny:1", feature_group=fg.key, commit=version_commit)
        deployments.deploy(cfg, checks={"commit": str(version_commit), "checks": {"feature_group": fg.key, "resolved_commit": str(version_commit)}})
    EvalStore(fg.store.home).record("tiny:1", EvalRecord(suite="s", passed=True, feature_group=fg.key, commit=str(c[3])))
    # A training dataset's lineage (written as the td pipeline does, without building examples).
    fg.store.training_datasets._meta.insert_unique({
        "key": "td:1", "name": "td", "version": 1, "table_name": "td__td__v1", "content_hash": "x", "rows": 0,
        "lineage": json.dumps({"records": {"feature_group": fg.key, "commit": c[4]}}), "created_at": datetime.now(timezone.utc)}, "key")
    return {c[0]: "tag", c[1]: "deployment v1 (rollback target)", c[2]: "deployment v2", c[3]: "eval", c[4]: "training dataset"}


def test_pruning_keeps_every_pinned_commit_and_time_travel_to_them_works(home, store, tmp_path, hash_config):
    fg, made = commits(store, tmp_path / "corpus", hash_config, 8)
    pinned = pin_everything(home, fg, made)
    protected = protected_commits(store.home, fg)
    assert set(pinned) <= set(protected)
    before = {v["commit"] for v in fg.versions_log()}

    report = maintain(home, [fg.key], keep_within="0s")[0]

    after = {v["commit"] for v in fg.versions_log()}
    pruned = {p["commit"] for p in report.pruned}
    assert pruned and pruned.isdisjoint(pinned) and after == (before | set(report.new_commits)) - pruned
    for commit, word in made.items():
        if commit in pinned:  # every protected commit still reads exactly its data
            assert word in " ".join(fg.read(commit, columns=["text"]).column("text").to_pylist()), (commit, pinned[commit])
        else:
            with pytest.raises(NotFoundError, match="pruned by maintenance"):
                fg.read(commit)
    assert fg.search("word7", k=1)["results"][0]["text"].count("word7") == 1  # the latest still serves
    history = {h["commit"]: h for h in fg.history()}
    assert {c for c, h in history.items() if not h["available"]} == pruned
    assert all(history[c]["pruned_at"] and history[c]["change"] == "data" for c in pruned if c in made)
    assert all(history[c]["available"] for c in pinned)


def test_a_later_unprotected_commit_goes_while_an_older_protected_one_stays(home, store, tmp_path, hash_config):
    fg, made = commits(store, tmp_path / "corpus", hash_config, 4)
    first, second = sorted(made)[:2]
    fg.tag(first, "keep")
    pruned = {p["commit"] for p in maintain(home, [fg.key], keep_within="0s")[0].pruned}
    assert second in pruned and first not in pruned
    assert fg.read("keep").num_rows == fg.read(first).num_rows > 0


def test_the_window_keeps_recently_superseded_versions_and_dry_run_writes_nothing(home, store, tmp_path, hash_config):
    fg, _ = commits(store, tmp_path / "corpus", hash_config, 4)
    versions = len(fg.versions_log())
    assert maintain(home, [fg.key], keep_within="1h")[0].pruned == []
    dry = maintain(home, [fg.key], keep_within="0s", dry_run=True)[0]
    assert dry.pruned and dry.dry_run
    assert len(fg.versions_log()) > versions - 1  # nothing removed by the dry run
    assert all(h["available"] for h in fg.history())


def test_the_window_counts_from_when_a_version_was_superseded():
    now = datetime(2026, 1, 10, tzinfo=timezone.utc)
    old = now - timedelta(days=30)
    versions = [(1, old, 1), (2, old + timedelta(days=1), 1), (3, now - timedelta(hours=1), 1), (4, now, 1)]
    plan = plan_prune(versions, RetentionPolicy(keep_within=timedelta(days=7)), tagged=set(), now=now)
    # 2 is 29 days old, but it served until 1 hour ago (3 replaced it): kept. 1 was replaced 29 days ago.
    assert plan.prune == [1] and plan.keep[2].startswith("superseded less than") and plan.keep[4] == "latest"
    plan = plan_prune(versions, RetentionPolicy(keep_within=timedelta(0), protected={2: ["deployment x"]}), tagged={1}, now=now)
    assert plan.prune == [3] and plan.keep[1] == "tagged" and "deployment x" in plan.keep[2]


def test_compaction_merges_small_fragments_and_reads_stay_identical(home, store, tmp_path, hash_config):
    corpus = tmp_path / "corpus"
    fg = store.feature_group("docs", must_exist=False)
    for i in range(6):
        write(corpus / f"d{i}.md", f"# D{i}\n\nDocument number {i} about topic{i}.\n")
        run_ingest(fg, [str(corpus)], config=hash_config)
    rows = sorted(fg.read(columns=["chunk_id"]).column("chunk_id").to_pylist())
    assert fragment_stats(fg.table(), 1 << 20)["fragments"] >= 6
    report = maintain(home, [fg.key], keep_within="7d")[0]
    assert report.compaction and report.fragments_after == 1 < report.fragments_before
    assert sorted(fg.read(columns=["chunk_id"]).column("chunk_id").to_pylist()) == rows
    assert fg.search("topic3", k=1, hybrid=True)["results"][0]["doc_id"] == "d3.md"


def test_maintenance_rewrites_fragments_that_carry_deleted_rows(home, store, tmp_path, hash_config):
    """A re-ingest leaves the rows it replaced as deletions, which Lance filters on every vector query
    (~1-2 ms at 1M chunks): maintenance rewrites such a fragment even when it has nothing to merge."""
    corpus = tmp_path / "corpus"
    for i in range(20):
        write(corpus / f"d{i}.md", f"# D{i}\n\nDocument number {i} about topic{i}.\n")
    fg = store.feature_group("docs", must_exist=False)
    run_ingest(fg, [str(corpus)], config=hash_config)
    (corpus / "d7.md").unlink()
    before = run_ingest(fg, [str(corpus)], config=hash_config, sync=True)  # deletes d7's rows, adds no fragment
    assert before.documents["deleted"] == 1
    stats = fragment_stats(fg.table(), 1 << 20)
    assert stats["fragments"] == 1 and stats["with_deletions"] == 1  # one small fragment: nothing to merge
    rows = sorted(fg.read(columns=["chunk_id"]).column("chunk_id").to_pylist())

    report = maintain(home, [fg.key], keep_within="7d")[0]
    assert report.compaction and report.compaction["deletions_materialized"] == 1
    assert fragment_stats(fg.table(), 1 << 20)["with_deletions"] == 0
    assert sorted(fg.read(columns=["chunk_id"]).column("chunk_id").to_pylist()) == rows
    assert fg.search("topic3", k=1, hybrid=True)["results"][0]["doc_id"] == "d3.md"
    first = min(v["commit"] for v in fg.versions_log())
    assert "d7.md" in fg.read(first, columns=["doc_id"]).column("doc_id").to_pylist()  # time travel still sees it
    assert maintain(home, [fg.key], keep_within="7d")[0].compaction is None  # nothing left to rewrite


def test_full_text_index_takes_new_rows_without_a_rebuild(store, tmp_path, hash_config):
    from llmfti.store.indexing import update_indexes

    corpus = tmp_path / "corpus"
    write(corpus / "a.md", "# A\n\nAlpha text about apples.\n")
    fg = store.feature_group("docs", must_exist=False)
    run_ingest(fg, [str(corpus)], config=hash_config)
    write(corpus / "b.md", "# B\n\nBravo text about zucchini.\n")
    run_ingest(fg, [str(corpus)], config=hash_config)
    tbl = fg.table()
    fts = [i for i in tbl.list_indices() if "text" in i.columns][0]
    stats = tbl.index_stats(fts.name)
    # A rebuild (create_fts_index(replace=True), what every commit did) leaves one segment; an
    # incremental update adds the new rows as a second one.
    assert stats.num_unindexed_rows == 0 and stats.num_indices == 2
    assert [r["doc_id"] for r in tbl.search("zucchini", query_type="fts").limit(3).to_list()] == ["b.md"]
    assert update_indexes(tbl) == [fts.name] and tbl.index_stats(fts.name).num_indices == 1  # maintenance merges


def test_system_tables_are_compacted_and_pruned_too(home, store, tmp_path, hash_config):
    commits(store, tmp_path / "corpus", hash_config, 5)
    runs = store.db.open_table("_ingest_runs")
    before = len(runs.list_versions())
    reports = {r.subject: r for r in maintain(home, keep_within="0s")}
    assert "_ingest_runs" in reports and "docs:1" in reports
    runs.checkout_latest()
    assert len(runs.list_versions()) < before and runs.count_rows() == 5


def test_cli_fg_maintain_and_history_say_what_was_pruned(home, store, tmp_path, hash_config):
    from typer.testing import CliRunner

    from llmfti.cli import app

    fg, made = commits(store, tmp_path / "corpus", hash_config, 4)
    fg.tag(min(made), "keep")
    runner = CliRunner()
    out = runner.invoke(app, ["--home", str(home), "fg", "maintain", "docs", "--keep-within", "0s", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)["tables"][0]
    assert report["subject"] == "docs:1" and report["pruned"] and min(made) in report["kept"]["tagged"]
    hist = json.loads(runner.invoke(app, ["--home", str(home), "fg", "history", "docs", "--json"]).stdout)["commits"]
    assert {h["commit"] for h in hist if not h["available"]} == {p["commit"] for p in report["pruned"]}
    bad = runner.invoke(app, ["--home", str(home), "fg", "maintain", "docs", "--keep-within", "soon", "--json"])
    assert isinstance(bad.exception, ConfigError) and bad.exception.exit_code == 2 and "duration" in str(bad.exception)


def test_a_time_whose_commit_was_pruned_is_not_answered_with_older_data(home, store, tmp_path, hash_config):
    fg, made = commits(store, tmp_path / "corpus", hash_config, 3)
    first, second, _ = sorted(made)
    fg.tag(first, "keep")
    log = {v["commit"]: v["timestamp"] for v in fg.versions_log()}
    between = log[second] + (log[second + 1] - log[second]) / 2  # when `second` (or its index version) was the latest
    assert fg.resolve_commit(between.isoformat()) >= second
    maintain(home, [fg.key], keep_within="0s")
    with pytest.raises(NotFoundError, match="maintenance pruned"):
        fg.resolve_commit(between.isoformat())
    assert fg.resolve_commit(log[first].isoformat()) == first  # a time at a kept commit still resolves


def test_a_keep_within_longer_than_any_date_is_a_usage_error():
    from llmfti.errors import ConfigError
    from llmfti.store.maintenance import parse_duration

    with pytest.raises(ConfigError, match="longer than any date can go back"):
        parse_duration("99999999999w")  # was an OverflowError traceback (issue 27, finding 10)
    assert parse_duration("2w").days == 14
