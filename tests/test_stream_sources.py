"""Stream sources keep their offsets under their full identity and never lose or repeat messages on
ordinary mistakes (issue 27, findings 3, 5, 7, 8): two files of one name, invalid UTF-8, integer and
empty keys, and batches that change nothing. JSONL replays only: no broker is needed."""

import json

import pytest

from conftest import write
from llmfti.pipelines.stream import stored_positions, stream_ingest
from llmfti.sources.stream import JsonlReplay, KafkaSource, StreamMessage, message_items, record_key


@pytest.fixture
def records_config():
    from llmfti.config import FeatureConfig

    return FeatureConfig(kind="records", embedder={"model": "hash-64"})


def lines(rows) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"


def qa(i, prefix="r"):
    return {"id": f"{prefix}{i}", "question": f"Q{prefix}{i}?", "answer": f"A{i}."}


def ids(fg):
    return sorted(r["doc_id"] for r in fg.read(columns=["doc_id"]).to_pylist())


def test_two_files_of_one_name_keep_their_own_offsets(store, tmp_path, records_config):
    jan = write(tmp_path / "jan" / "history.jsonl", lines(qa(i, "jan") for i in range(10)))
    feb = write(tmp_path / "feb" / "history.jsonl", lines(qa(i, "feb") for i in range(12)))
    fg = store.feature_group("qa", must_exist=False)
    stream_ingest(fg, JsonlReplay(jan), config=records_config, until_idle=True)
    run = stream_ingest(fg, JsonlReplay(feb), config=records_config, until_idle=True)
    assert run.started_at == {} and run.positions == {0: 12}  # was resumed at offset 10: 10 records skipped
    assert len(ids(fg)) == 22
    assert KafkaSource("b:9092,a:9092", "t").name == "kafka:a:9092,b:9092/t" != KafkaSource("c:9092", "t").name


def test_offsets_under_the_old_ambiguous_name_are_not_guessed(store, tmp_path, records_config):
    history = write(tmp_path / "history.jsonl", lines(qa(i) for i in range(4)))
    fg = store.feature_group("qa", must_exist=False)
    stream_ingest(fg, JsonlReplay(history, source_id="replay:history.jsonl"), config=records_config, max_batches=1, batch_size=2)
    from llmfti.errors import ConfigError

    with pytest.raises(ConfigError, match="ambiguous name 'replay:history.jsonl'"):
        stream_ingest(fg, JsonlReplay(history), config=records_config, until_idle=True)
    run = stream_ingest(fg, JsonlReplay(history, source_id="replay:history.jsonl"), config=records_config, until_idle=True)
    assert run.started_at == {0: 2} and ids(fg) == ["r0", "r1", "r2", "r3"]


def test_invalid_utf8_is_one_quarantined_message_and_the_good_lines_are_stored(store, tmp_path, home, records_config):
    import subprocess
    import sys

    history = tmp_path / "h.jsonl"
    history.write_bytes(lines([qa(0), qa(1)]).encode() + b'{"id": "x", "question": "\xff\xfe?", "answer": "A."}\n' + lines([qa(2)]).encode())
    res = subprocess.run([sys.executable, "-m", "llmfti", "--home", str(home), "ingest", str(history), "-f", "qa", "--kind", "records",
                          "--set", "embedder.model=hash-64", "--stream", "--until-idle", "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout)  # exactly one JSON document
    assert doc["positions"] == {"0": 4}
    from llmfti.store import FeatureStore

    fs = FeatureStore(home)
    assert ids(fs.feature_group("qa")) == ["r0", "r1", "r2"]
    bad = fs.quarantine(fs.feature_group("qa").key)
    assert [(q["source"], q["reason"]) for q in bad] == [(f"replay:{history.resolve()}/0@2", "undecodable")]


def test_keys_are_normalised_one_way_and_bad_keys_are_quarantined():
    assert record_key(5) == record_key("5") == record_key('"5"') == "5"
    msgs = [StreamMessage("t", 0, 0, record_key(5), json.dumps({"question": "Q?", "answer": "A."})),
            StreamMessage("t", 0, 1, "", json.dumps({"question": "Q2?", "answer": "B."})),
            StreamMessage("t", 0, 2, "[1, 2]", None)]
    items, deletes = message_items(msgs, "records")
    assert [i.doc_id for i in items if hasattr(i, "text")] == ["5"]
    assert sorted((i.source, i.reason) for i in items if not hasattr(i, "text")) == [("t/0@1", "bad-key"), ("t/0@2", "bad-key")]


def test_an_integer_key_tombstone_deletes_the_record_it_created(store, tmp_path, records_config):
    history = write(tmp_path / "h.jsonl", lines([{"key": 5, "value": {"question": "Q?", "answer": "A."}}, qa(1)]))
    fg = store.feature_group("qa", must_exist=False)
    stream_ingest(fg, JsonlReplay(history), config=records_config, until_idle=True)
    assert ids(fg) == ["5", "r1"]
    with open(history, "a") as f:
        f.write(json.dumps({"key": 5, "value": None}) + "\n")
    stream_ingest(fg, JsonlReplay(history), config=records_config, until_idle=True)
    assert ids(fg) == ["r1"]


def test_a_batch_that_commits_nothing_still_advances_the_offsets(store, tmp_path, records_config):
    history = write(tmp_path / "h.jsonl", lines([qa(0)] + ["{bad"] * 5))
    fg = store.feature_group("qa", must_exist=False)
    stream_ingest(fg, JsonlReplay(history), config=records_config, batch_size=1, max_batches=1)
    for _ in range(3):  # the 5 bad messages make no commit; they must not be quarantined again on every run
        stream_ingest(fg, JsonlReplay(history), config=records_config, until_idle=True)
    assert stored_positions(fg, JsonlReplay(history).name) == {0: 6}
    assert len(store.quarantine(fg.key)) == 5


def test_a_second_writer_of_the_same_source_is_refused_and_nothing_is_reapplied(store, tmp_path, records_config):
    from llmfti.errors import ConfigError
    from llmfti.pipelines.stream import source_claim

    history = write(tmp_path / "h.jsonl", lines(qa(i) for i in range(4)))
    fg = store.feature_group("qa", must_exist=False)
    with source_claim(fg, JsonlReplay(history).name):  # another process streams this source now
        with pytest.raises(ConfigError, match="already streaming"):
            stream_ingest(fg, JsonlReplay(history), config=records_config, until_idle=True)
    assert not store.feature_group("qa", must_exist=False).has_data()
    other = write(tmp_path / "other.jsonl", lines(qa(i, "o") for i in range(2)))
    with source_claim(fg, JsonlReplay(history).name):  # another source of the same group is not held up
        stream_ingest(fg, JsonlReplay(other), config=records_config, until_idle=True)
    run = stream_ingest(fg, JsonlReplay(history), config=records_config, until_idle=True)  # released: it runs
    assert run.positions == {0: 4} and len(ids(fg)) == 6
