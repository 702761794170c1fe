"""An object-storage home (`LLMFTI_HOME=s3://bucket/prefix`) against moto's S3 server on loopback:
feature groups, training datasets, registry tables and model folders, deployments, eval records and
the inference log all live in the bucket; a second "host" (a separate, empty cache folder) reads
everything the first one wrote; version numbers are claimed with conditional puts; the serving
connection re-reads new commits on its own (read_consistency_interval)."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

pytest.importorskip("moto")
pytest.importorskip("boto3")

from conftest import write  # noqa: E402

BUCKET = "llmfti-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 on 127.0.0.1 with a random port; storage options as Lance and boto3 read them."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    opts = {"aws_endpoint": f"http://{host}:{port}", "aws_region": "us-east-1", "allow_http": "true",
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    client = boto3.client("s3", endpoint_url=opts["aws_endpoint"], region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    yield {"options": opts, "client": client}
    server.stop()


@pytest.fixture
def uri(request):
    return f"s3://{BUCKET}/{request.node.name.replace('[', '-').replace(']', '')}"


def host(uri: str, s3, cache):
    """The home as one host sees it: the bucket, plus this host's own cache folder."""
    from llmfti.home import ProjectHome

    return ProjectHome(cache / "cache", uri, dict(s3["options"]))


def keys(s3, prefix: str) -> list[str]:
    pages = s3["client"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def corpus(root):
    write(root / "with.md", "# The with statement\n\nThe with statement wraps a block with a context manager; __exit__ always runs.\n")
    write(root / "loops.md", "# Loops\n\nA for loop iterates over an iterable. A while loop repeats while a condition holds.\n")
    write(root / "gen.md", "# Generators\n\nGenerators yield values lazily and keep their state between calls.\n")
    return root


def test_home_from_the_environment(monkeypatch, tmp_path, s3):
    from llmfti.home import ProjectHome

    monkeypatch.setenv("LLMFTI_HOME", f"s3://{BUCKET}/env/")
    monkeypatch.setenv("LLMFTI_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("LLMFTI_STORAGE_OPTIONS", json.dumps({k: v for k, v in s3["options"].items() if k != "allow_http"}))
    home = ProjectHome.at()
    assert home.remote and home.uri == f"s3://{BUCKET}/env" and home.db_uri == f"s3://{BUCKET}/env/db"
    assert home.root.is_relative_to(tmp_path / "c") and home.storage_options["allow_http"] == "true"  # http endpoint: implied
    cfg = tmp_path / "home.yaml"
    cfg.write_text("storage_options:\n  aws_region: eu-west-3\n")
    monkeypatch.setenv("LLMFTI_STORAGE_OPTIONS", str(cfg))
    assert ProjectHome.at().storage_options["aws_region"] == "eu-west-3"
    from llmfti.errors import ConfigError

    with pytest.raises(ConfigError, match="unsupported home"):
        ProjectHome.at("gs://bucket/x")


def test_feature_groups_live_in_the_bucket_and_another_host_reads_them(uri, s3, tmp_path):
    from llmfti.config import FeatureConfig
    from llmfti.pipelines.feature import ingest
    from llmfti.store import FeatureStore

    a = host(uri, s3, tmp_path / "a")
    s = ingest(FeatureStore(a).feature_group("docs", must_exist=False), [str(corpus(tmp_path / "corpus"))], config=FeatureConfig(embedder={"model": "hash-64"}))
    assert s.committed and s.chunks_written > 0
    prefix = uri[len(f"s3://{BUCKET}/"):]
    stored = keys(s3, prefix + "/")
    assert any(k.startswith(f"{prefix}/db/fg__docs__v1.lance/") for k in stored)
    assert f"{prefix}/artifacts/feature_groups/docs/1/feature_group.json" in stored
    assert not (a.root / "db").exists()  # nothing of the database on the local disk
    fg_a = FeatureStore(a).feature_group("docs")
    fg_a.tag(s.data_commit, "v1-data")
    write(tmp_path / "corpus" / "new.md", "# Context managers\n\n__enter__ and __exit__ make a context manager.\n")
    again = ingest(fg_a, [str(tmp_path / "corpus")])
    assert again.documents["added"] == 1

    b = host(uri, s3, tmp_path / "b")  # another host: an empty cache
    fg_b = FeatureStore(b).feature_group("docs")
    assert fg_b.describe()["rows"] == fg_a.describe()["rows"] and fg_b.tags() == {"v1-data": s.data_commit}
    hits = fg_b.search("context manager __exit__", k=2)["results"]
    assert hits and hits[0]["doc_id"] in {"with.md", "new.md"}
    assert "new.md" not in set(fg_b.read("v1-data", columns=["doc_id"]).column("doc_id").to_pylist())  # time travel on S3
    assert [h["change"] for h in fg_b.history()].count("data") == 2


def test_model_folders_go_to_the_bucket_and_load_on_another_host(uri, s3, tmp_path):
    from llmfti.registry import ModelRegistry
    from llmfti.testing.tiny_models import save_tiny_adapter, save_tiny_model

    a = host(uri, s3, tmp_path / "a")
    reg_a = ModelRegistry(a)
    reg_a.import_base_model(str(save_tiny_model(tmp_path / "tiny")), "tiny")
    base = reg_a.ensure_base_version("tiny")
    adapter = save_tiny_adapter(tmp_path / "tiny", tmp_path / "adapter")
    lora = reg_a.register_version("tiny", base_model="tiny", adapter_dir=str(adapter), encoder=reg_a.load_encoder(base.ref))
    prefix = uri[len(f"s3://{BUCKET}/"):]
    stored = keys(s3, prefix + "/artifacts/models/")
    assert any(k.endswith("models/base/tiny/model.safetensors") for k in stored)
    assert any(k.endswith("models/versions/tiny/2/adapter/adapter_model.safetensors") for k in stored)

    b = host(uri, s3, tmp_path / "b")
    reg_b = ModelRegistry(b)
    assert [mv.ref for mv in reg_b.versions("tiny")] == ["tiny:1", "tiny:2"]
    assert reg_b.check(lora.ref).ok  # hashes verified on the fetched copies
    model, tokenizer, encoder = reg_b.load_model(lora.ref)
    assert encoder.fingerprint == lora.encoder_fingerprint and hasattr(model, "peft_config")
    assert (b.root / "artifacts" / "models" / "versions" / "tiny" / "2" / "adapter").is_dir()  # the host's cache


def test_version_numbers_are_claimed_atomically_on_the_bucket(uri, s3, tmp_path):
    homes = [host(uri, s3, tmp_path / f"h{i}") for i in range(6)]
    got, lock = [], threading.Lock()

    def claim(h):
        for _ in range(3):
            n, folder = h.claim_version_dir(h.artifacts / "datasets" / "qa")
            assert folder.is_dir()
            with lock:
                got.append(n)

    threads = [threading.Thread(target=claim, args=(h,)) for h in homes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 19))  # 18 claims from 6 "hosts", 18 distinct numbers
    assert homes[0].claim_dir(homes[0].artifacts / "x") is True and homes[1].claim_dir(homes[1].artifacts / "x") is False


def test_training_dataset_on_the_bucket_is_read_by_another_host(uri, s3, tmp_path):
    from llmfti.pipelines.training_dataset import create as create_dataset
    from llmfti.store import FeatureStore
    from td_fixtures import import_tiny, ingest_docs, ingest_records, qa_rows, tiny_chat_model, write_jsonl
    from llmfti.config import FeatureConfig

    a = host(uri, s3, tmp_path / "a")
    store = FeatureStore(a)
    ingest_records(store, write_jsonl(tmp_path / "qa.jsonl", qa_rows()))
    ingest_docs(store, corpus(tmp_path / "corpus"), FeatureConfig(embedder={"model": "hash-64"}))
    import_tiny(a, tiny_chat_model(tmp_path / "tiny"))
    ds = create_dataset(store, name="qa-train", source="qa:1", contexts="docs:1", top_k=2, model="tiny")
    assert ds.describe()["artifacts"].startswith(f"{uri}/artifacts/datasets/qa-train/1")

    b = host(uri, s3, tmp_path / "b")
    other = FeatureStore(b).training_dataset("qa-train:1")
    assert [r["example_id"] for r in other.examples()] == [r["example_id"] for r in ds.examples()]
    assert other.encoder().fingerprint == ds.encoder().fingerprint  # the pinned tokenizer, fetched from the bucket


def test_deployments_eval_records_and_the_inference_log_across_hosts(uri, s3, tmp_path, monkeypatch):
    from llmfti.config import FeatureConfig
    from llmfti.config.deployments import DeploymentConfig
    from llmfti.pipelines.batch_inference import batch_infer
    from llmfti.pipelines.deployment import check_deployment
    from llmfti.pipelines.feature import ingest
    from llmfti.registry import ModelRegistry
    from llmfti.registry.deployments import DeploymentStore, find_passing_eval, tuple_key
    from llmfti.registry.evals import EvalRecord
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog
    from llmfti.testing.tiny_models import save_tiny_model

    monkeypatch.setenv("LLMFTI_BUFFER_DIR", str(tmp_path / "a" / "local-buffers"))
    a = host(uri, s3, tmp_path / "a")
    ingest(FeatureStore(a).feature_group("docs", must_exist=False), [str(corpus(tmp_path / "corpus"))], config=FeatureConfig(embedder={"model": "hash-64"}))
    reg = ModelRegistry(a)
    reg.import_base_model(str(save_tiny_model(tmp_path / "tiny")), "tiny")
    reg.ensure_base_version("tiny")
    cfg = DeploymentConfig(name="docs-qa", model="tiny:1", feature_group="docs:1", retrieval={"k": 2}, generation={"max_new_tokens": 6})
    store_a = DeploymentStore(a)
    first = store_a.deploy(cfg, checks=check_deployment(cfg, a), force=True, reason="s3 test")
    store_a.deploy(cfg.model_copy(update={"generation": cfg.generation.model_copy(update={"max_new_tokens": 4})}), checks=check_deployment(cfg, a))
    prefix = uri[len(f"s3://{BUCKET}/"):]
    claims = [k for k in keys(s3, f"{prefix}/artifacts/deployments/docs-qa/") if k.endswith("/.llmfti-claim")]
    assert sorted(k.split("/docs-qa/")[1] for k in claims) == ["1/.llmfti-claim", "2/.llmfti-claim", "events/1/.llmfti-claim", "events/2/.llmfti-claim"]

    # An eval record whose per-case artifact was written on host a.
    artifact = a.artifacts / "evals" / "suite" / "run.json"
    write(artifact, json.dumps({"cases": [{"id": "c1"}]}))
    key = tuple_key(cfg, first["checks"].get("resolved_commit", 2))
    reg.record_eval("tiny:1", EvalRecord(suite="suite", suite_version="v1", passed=True, tuple_key=key, artifact=str(artifact.relative_to(a.root))))

    b = host(uri, s3, tmp_path / "b")
    store_b = DeploymentStore(b)
    assert store_b.active("docs-qa")["version"] == 2
    store_b.rollback("docs-qa", reason="from host b")
    assert store_a.active("docs-qa")["version"] == 1
    found, _ = find_passing_eval(b, key, "tiny:1", "suite")
    assert found is not None and json.loads((b.root / found.artifact).read_text())["cases"][0]["id"] == "c1"

    # Host b serves a batch: its buffer is local disk, the rows land in the bucket's log table.
    monkeypatch.setenv("LLMFTI_BUFFER_DIR", str(tmp_path / "b" / "local-buffers"))
    (tmp_path / "q.jsonl").write_text(json.dumps({"question": "What does the with statement do?"}) + "\n")
    summary = batch_infer("docs-qa", tmp_path / "q.jsonl", tmp_path / "answers.jsonl", home=b)
    assert summary.ok == 1
    answer = json.loads((tmp_path / "answers.jsonl").read_text())
    assert answer["versions"]["deployment"] == 1 and answer["citations"]
    assert (tmp_path / "b" / "local-buffers" / "inference_log").is_dir()
    assert any(k.startswith(f"{prefix}/db/_inference_log.lance/") for k in keys(s3, f"{prefix}/db/"))
    log_a = InferenceLog(FeatureStore(a), maintenance=False)
    try:
        rows = log_a.query(request_id=answer["request_id"], limit=None)
    finally:
        log_a.close()
    assert len(rows) == 1 and rows[0]["origin"] == "batch" and rows[0]["output"] == answer["answer"]


def test_a_long_lived_handle_sees_other_hosts_commits(uri, s3, tmp_path, monkeypatch):
    import pyarrow as pa

    monkeypatch.setenv("LLMFTI_READ_CONSISTENCY_S", "0.2")
    a, b = host(uri, s3, tmp_path / "a"), host(uri, s3, tmp_path / "b")
    table_b = b.connect().create_table("t", data=pa.table({"x": [1]}))
    held = a.connect().open_table("t")  # e.g. the service's handle on a feature group or a system table
    assert held.count_rows() == 1
    table_b.add(pa.table({"x": [2, 3]}))
    time.sleep(0.5)
    assert held.count_rows() == 3  # no checkout_latest(): the connection's read_consistency_interval does it
