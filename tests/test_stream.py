"""The stream feature pipeline: micro-batches from Kafka with the partition offsets stored in the same
commit as the data, so a restart resumes exactly once; backfills run the same code over a JSONL replay.

No broker can run here: Kafka is simulated in-process by kafka-mocha (its KConsumer/KProducer stand in
for confluent_kafka's Consumer/Producer), which partitions, assigns, seeks and consumes like a broker."""

import json
import uuid

import pytest

from conftest import write
from llmfti.pipelines.feature_commit import commit_properties
from llmfti.pipelines.stream import PREFIX, stored_positions, stream_ingest
from llmfti.sources.stream import JsonlReplay, KafkaSource, StreamMessage, message_items

pytest.importorskip("kafka_mocha", reason="the stream extra (pip install 'llmfti[stream]') simulates Kafka")


@pytest.fixture
def records_config():
    from llmfti.config import FeatureConfig

    return FeatureConfig(kind="records", embedder={"model": "hash-64"})


def produce(topic, messages, partitions=2):
    """messages: (key, value dict or None) in order; key k goes to partition hash-free k % partitions."""
    import confluent_kafka
    from kafka_mocha import mock_producer
    from kafka_mocha.core.kafka_simulator import KafkaSimulator
    from kafka_mocha.models.kmodels import KTopic

    sim = KafkaSimulator()
    if not any(t.name == topic for t in sim.topics):
        sim.topics.append(KTopic(topic, partitions))
    with mock_producer():
        producer = confluent_kafka.Producer({"bootstrap.servers": "sim:9092"})
        for i, (key, value) in enumerate(messages):
            producer.produce(topic, key=key, value=None if value is None else json.dumps(value), partition=int(key[1:]) % partitions)
        producer.flush()


def kafka(topic):
    return KafkaSource("sim:9092", topic, group_id="llmfti-test")


def consumed(fg):
    rows = fg.read(columns=["doc_id", "answer", "source"]).to_pylist()
    return {r["doc_id"]: r["answer"] for r in rows}


def qa(i, answer=None):
    return (f"k{i}", {"question": f"Question {i}?", "answer": answer or f"Answer {i}."})


def test_message_items_parse_like_jsonl_lines_with_keys_tombstones_and_quarantine():
    msgs = [StreamMessage("t", 0, 5, "a", json.dumps({"question": "Q?", "answer": "A."})),
            StreamMessage("t", 0, 6, "b", json.dumps({"question": "Q2?", "answer": "B."})),
            StreamMessage("t", 0, 7, "b", None),  # tombstone after the upsert: b is deleted
            StreamMessage("t", 1, 3, None, "{not json"),
            StreamMessage("t", 1, 4, "c", json.dumps({"id": "explicit", "question": "Q3?", "answer": "C."}))]
    items, deletes = message_items(msgs, "records")
    docs = {i.doc_id: i for i in items if hasattr(i, "doc_id") and hasattr(i, "text")}
    assert set(docs) == {"a", "explicit"} and deletes == ["b"]
    assert docs["a"].source == "t/0:5" and docs["a"].fields["answer"] == "A."
    bad = [i for i in items if not hasattr(i, "text")]
    assert len(bad) == 1 and bad[0].source == "t/1@3" and bad[0].reason == "bad-record"


def test_offsets_are_committed_with_the_data_and_a_restart_resumes_exactly_once(store, records_config):
    from kafka_mocha import mock_consumer

    topic = f"qa-{uuid.uuid4().hex[:8]}"
    produce(topic, [qa(i) for i in range(10)])
    fg = store.feature_group("qa", must_exist=False)
    batches = []
    with mock_consumer():
        first = stream_ingest(fg, kafka(topic), config=records_config, batch_size=2, poll_timeout_s=0, max_batches=1, on_batch=batches.append)
    assert first.commits == 1
    commit, value = commit_properties(fg, PREFIX + "kafka:sim:9092/" + topic)
    assert commit == batches[0].data_commit  # the offsets are in the very commit that holds the data
    in_commit = {int(p): o for p, o in json.loads(value).items()}
    # kafka-mocha hands out up to batch_size messages per partition: k0, k2 (partition 0) and k1, k3.
    assert in_commit == first.positions and set(consumed(fg)) == {"k0", "k1", "k2", "k3"}
    assert stored_positions(fg, "kafka:sim:9092/" + topic) == first.positions

    seen = []
    with mock_consumer():
        second = stream_ingest(fg, kafka(topic), config=records_config, batch_size=2, poll_timeout_s=0, until_idle=True, on_batch=seen.append)
    assert second.started_at == first.positions
    assert sum(s.documents["seen"] for s in seen) == 10 - sum(1 for _ in consumed_before(first))  # nothing re-read
    assert set(consumed(fg)) == {f"k{i}" for i in range(10)} and fg.table().count_rows() == 10


def consumed_before(run):
    """Messages the first run consumed: positions are next offsets, starting at the partitions' first."""
    for partition, position in run.positions.items():
        yield from range(1000, position)  # kafka-mocha numbers offsets from 1000


def test_a_crash_before_the_commit_re_reads_the_batch_and_updates_and_deletes_apply_once(store, records_config, monkeypatch):
    import llmfti.pipelines.feature as feature
    from kafka_mocha import mock_consumer

    topic = f"qa-{uuid.uuid4().hex[:8]}"
    produce(topic, [qa(i) for i in range(4)])
    fg = store.feature_group("qa", must_exist=False)
    real_commit = feature.commit_rows
    calls = []

    def crash_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed between embedding and the commit
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(feature, "commit_rows", crash_second)
    with mock_consumer(), pytest.raises(KeyboardInterrupt):
        stream_ingest(fg, kafka(topic), config=records_config, batch_size=1, poll_timeout_s=0)
    monkeypatch.setattr(feature, "commit_rows", real_commit)
    produce(topic, [qa(1, "Answer 1, corrected."), ("k2", None)])  # an update and a tombstone
    with mock_consumer():
        stream_ingest(fg, kafka(topic), config=records_config, batch_size=3, poll_timeout_s=0, until_idle=True)
    assert consumed(fg) == {"k0": "Answer 0.", "k1": "Answer 1, corrected.", "k3": "Answer 3."}
    assert fg.table().count_rows() == 3


def test_a_backfill_is_the_same_pipeline_over_a_jsonl_replay_and_resumes(store, tmp_path, records_config):
    history = write(tmp_path / "history.jsonl", "\n".join(json.dumps({"id": f"h{i}", "question": f"Q{i}?", "answer": f"A{i}."}) for i in range(7))
                    + "\n" + json.dumps({"key": "h3", "value": None}) + "\n")
    fg = store.feature_group("qa", must_exist=False)
    run = stream_ingest(fg, JsonlReplay(history), config=records_config, batch_size=3, max_batches=2)
    assert run.positions == {0: 6} and fg.table().count_rows() == 6
    run = stream_ingest(fg, JsonlReplay(history), config=records_config, batch_size=3, until_idle=True)
    assert run.started_at == {0: 6} and run.positions == {0: 8}
    assert sorted(consumed(fg)) == ["h0", "h1", "h2", "h4", "h5", "h6"]


def test_cli_stream_backfill_prints_one_json_document(home, tmp_path):
    from typer.testing import CliRunner

    from llmfti.cli import app

    history = write(tmp_path / "h.jsonl", "\n".join(json.dumps({"question": f"Q{i}?", "answer": f"A{i}."}) for i in range(5)) + "\n")
    args = ["--home", str(home), "ingest", str(history), "-f", "qa", "--kind", "records", "--set", "embedder.model=hash-64",
            "--stream", "--batch-size", "2", "--until-idle", "--json"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["batches"] == 3 and doc["commits"] == 3 and doc["positions"] == {"0": 5}
    again = json.loads(CliRunner().invoke(app, args).stdout)
    assert again["batches"] == 0 and again["resumed_from"] == {"0": 5}
