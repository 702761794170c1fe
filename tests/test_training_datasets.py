"""Training datasets (`llmfti td`): point-in-time creation from a records feature group, contexts
retrieved at a pinned documents commit, prompts identical to serving's, lineage, seeded stable
splits, recreate after late-arriving data, and records -> td -> finetune -> registered model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from td_fixtures import QA, import_tiny, ingest_docs, ingest_records, qa_rows, tiny_chat_model, write_jsonl
from llmfti.pipelines.training_dataset import create as create_dataset, recreate as recreate_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return tiny_chat_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def project(home, store, corpus, hash_config, tiny_folder, tmp_path):
    """docs:1 (hash-embedded corpus), qa:1 (records; q-gen names its context), base model 'tiny'."""
    docs = ingest_docs(store, corpus, hash_config)
    qa, _ = ingest_records(store, write_jsonl(tmp_path / "qa.jsonl", qa_rows(**{"q-gen": {"context_ids": ["sub/gen.txt"]}})))
    import_tiny(home, tiny_folder)
    return store, docs, qa


def _cli(home, *args):
    from typer.testing import CliRunner

    from llmfti.cli import app

    return CliRunner().invoke(app, ["--home", str(home), *args])


def test_create_records_lineage_and_prompts_are_the_serving_prompts(project, home, tiny_folder):
    from llmfti.transforms.model_dependent import IGNORE_INDEX, Context, PromptEncoder

    store, docs, qa = project
    res = _cli(home, "td", "create", "qa-train", "--from", "qa", "--contexts", "docs:1", "--top-k", "2", "--context-order", "given-first",
               "--encoder", "rag-default", "--model", "tiny", "--split", "0.5", "--seed", "3", "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    enc = PromptEncoder.from_model_dir(tiny_folder, "rag-default")
    assert d["ref"] == "qa-train:1" and d["table"] == "td__qa-train__v1"
    assert d["records"] == {"feature_group": "qa:1", "commit": qa.resolve_commit(), "as_of": None}
    assert d["contexts"]["feature_group"] == "docs:1" and d["contexts"]["commit"] == docs.resolve_commit() and d["contexts"]["top_k"] == 2
    assert [s["role"] for s in d["sources"]] == ["records", "contexts"]
    e = d["encoder"]
    assert e["fingerprint"] == enc.fingerprint and e["components"] == enc.fingerprint_components
    assert e["prompt_template"] == "rag-default" and e["model"] == {"kind": "base_model", "ref": "tiny"}
    assert (d["seed"], d["split"], d["rows"]["total"]) == (3, 0.5, len(QA)) and len(d["content_hash"]) == 64
    assert json.loads(_cli(home, "td", "show", "qa-train:1", "--json").stdout) == d
    listed = json.loads(_cli(home, "td", "list", "--json").stdout)["training_datasets"]
    assert [x["ref"] for x in listed] == ["qa-train:1"]

    ds = store.training_dataset("qa-train:1")
    assert ds.encoder().fingerprint == enc.fingerprint  # pinned tokenizer + template reproduce it
    assert json.loads((ds.artifacts_dir / "dataset.json").read_text())["content_hash"] == d["content_hash"]
    rows = ds.examples()
    assert [r["doc_id"] for r in rows] == sorted(i for i, *_ in QA)
    commit = d["contexts"]["commit"]
    for r in rows:
        # The serving path: search the pinned commit, then encode_prompt. Byte-identical prompt tokens.
        hits = docs.search(r["question"], k=2, as_of=commit)["results"]
        ctx = [Context(h["chunk_id"], h["text"], h["score"], h["source"]) for h in hits]
        if r["doc_id"] == "q-gen":  # given-first: the record's own context_ids come first (retrieval order: test_records_detail.py)
            gen = docs.read(commit, where="doc_id = 'sub/gen.txt'").to_pylist()[0]
            ctx = [Context(gen["chunk_id"], gen["text"], 1.0, gen["source"])] + [c for c in ctx if c.chunk_id != gen["chunk_id"]][:1]
            assert r["context_ids"][0] == gen["chunk_id"]
        prompt = enc.encode_prompt(r["question"], ctx)
        n = r["prompt_length"]
        assert r["input_ids"][:n] == prompt.input_ids and r["context_ids"] == [c.chunk_id for c in prompt.contexts_used]
        assert r["labels"][:n] == [IGNORE_INDEX] * n and r["labels"][n:] == r["input_ids"][n:]
        assert r["input_ids"][-1] == enc.eos_token_id
    assert {r["split"] for r in ds.examples("eval")} <= {"eval"} and len(ds.examples("train")) + len(ds.examples("eval")) == len(rows)


def test_late_arriving_records_do_not_change_a_recreated_dataset(project, home, tmp_path):
    store, docs, qa = project
    # Ingested BEFORE creation but with an event time after the bound: excluded.
    ingest_records(store, write_jsonl(tmp_path / "future.jsonl", qa_rows([("q-future", "What comes later?", "Later things [1].", "2024-06-01")])))
    res = _cli(home, "td", "create", "qa-train", "--from", "qa:1", "--event-time-until", "2024-02-15", "--contexts", "docs:1",
               "--top-k", "2", "--model", "tiny", "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    ds = store.training_dataset("qa-train:1")
    ids = [r["doc_id"] for r in ds.examples()]
    assert "q-future" not in ids and "q-state" not in ids  # q-state: 2024-02-20, after the bound
    assert d["rows"]["excluded_by_event_time"] == 2 and d["event_time_until"].startswith("2024-02-15")
    assert d["records"]["commit"] == qa.resolve_commit()  # pinned although no --as-of was given

    # Late arrival: event time INSIDE the window, ingested after the dataset was made (a new commit).
    late = ingest_records(store, write_jsonl(tmp_path / "late.jsonl", qa_rows([("q-late", "Is this late?", "Yes, late [1].", "2024-01-15")])))[1]
    assert late.committed and late.commit > d["records"]["commit"]
    res = _cli(home, "td", "recreate", "qa-train:1", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["identical"] and rep["recreated_content_hash"] == d["content_hash"] and rep["first_difference"] is None

    # The same request made now sees the late record; pinned to the old commit it is identical again.
    now = create_dataset(store, name="qa-train", source="qa:1", event_time_until="2024-02-15", contexts="docs:1", top_k=2, model="tiny")
    assert now.ref == "qa-train:2" and "q-late" in [r["doc_id"] for r in now.examples()] and now.content_hash != d["content_hash"]
    pinned = create_dataset(store, name="qa-train", source="qa:1", as_of=str(d["records"]["commit"]), event_time_until="2024-02-15",
                                            contexts=f"docs:1@{d['contexts']['commit']}", top_k=2, model="tiny")
    assert pinned.content_hash == d["content_hash"] and pinned.describe()["records"]["as_of"] == str(d["records"]["commit"])

    # A stored dataset that no longer matches its lineage is reported, naming the first differing example.
    store.db.open_table(ds.table_name).delete("doc_id = 'q-for'")
    res = _cli(home, "td", "recreate", "qa-train:1", "--json")
    assert res.exit_code == 4
    rep = json.loads(res.stdout)
    assert not rep["identical"] and rep["first_difference"]["recreated_doc_id"] == "q-for"


def test_split_is_seeded_and_stable_under_added_records(home, store, tiny_folder, tmp_path):
    from llmfti.pipelines.training_dataset.build import split_of

    items = [(f"q{i:02d}", f"Question number {i}?", f"Answer {i}.", "2024-01-01") for i in range(30)]
    ingest_records(store, write_jsonl(tmp_path / "a.jsonl", qa_rows(items[:20])))
    import_tiny(home, tiny_folder)
    a = {r["doc_id"]: r["split"] for r in create_dataset(store, name="s", source="qa", model="tiny", split=0.7, seed=0).examples()}
    again = {r["doc_id"]: r["split"] for r in create_dataset(store, name="s", source="qa", model="tiny", split=0.7, seed=0).examples()}
    other = {r["doc_id"]: r["split"] for r in create_dataset(store, name="s", source="qa", model="tiny", split=0.7, seed=1).examples()}
    assert a == again and a != other and {"train", "eval"} == set(a.values())
    assert a == {k: split_of(k, 0, 0.7) for k in a}
    ingest_records(store, write_jsonl(tmp_path / "b.jsonl", qa_rows(items[20:])))
    grown = {r["doc_id"]: r["split"] for r in create_dataset(store, name="s", source="qa", model="tiny", split=0.7, seed=0).examples()}
    assert len(grown) == 30 and {k: grown[k] for k in a} == a  # nobody moved
    assert [v.ref for v in store.training_datasets.list()] == ["s:1", "s:2", "s:3", "s:4"]


def test_refusals(project, home):
    from llmfti.errors import ConfigError, IncompatibleError, NotFoundError

    store, *_ = project
    with pytest.raises(IncompatibleError, match="not records"):
        create_dataset(store, name="x", source="docs", model="tiny")
    with pytest.raises(ConfigError, match="no records"):
        create_dataset(store, name="x", source="qa", model="tiny", event_time_until="2000-01-01")
    with pytest.raises(NotFoundError):
        create_dataset(store, name="x", source="qa", model="nope")
    for args, code in [(["td", "show", "x:1"], 3), (["td", "create", "bad__name", "--from", "qa", "--model", "tiny"], 2)]:
        # A real process: main() turns errors into exit codes and prints exactly one JSON document.
        proc = subprocess.run([sys.executable, "-m", "llmfti", "--home", str(home), *args, "--json"], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
        assert proc.returncode == code, proc.stderr
        assert "error" in json.loads(proc.stdout)
    assert not store.training_datasets.list()


def test_cli_ingest_records_with_quarantine(home, tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", qa_rows(QA[:2]) + [{"id": "bad", "answer": "no question"}])
    res = _cli(home, "ingest", str(path), "--feature-group", "qa", "--kind", "records", "--set", "embedder.model=hash-64", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["committed"] and doc["documents"]["added"] == 2 and doc["documents"]["quarantined"] == 1
    assert doc["quarantine"][0]["reason"] == "bad-record"
    shown = json.loads(_cli(home, "fg", "show", "qa", "--json").stdout)
    assert shown["kind"] == "records" and {"question", "answer", "context_ids"} <= set(shown["schema"])


def test_records_to_td_to_finetune_to_registered_model_with_lineage(project, home, tmp_path):
    """End to end on CPU: the registered version's lineage names the dataset and its feature-group commits."""
    import yaml

    store, docs, qa = project
    assert _cli(home, "td", "create", "qa-train", "--from", "qa", "--contexts", "docs:1", "--top-k", "1", "--model", "tiny",
                "--split", "0.8", "--json").exit_code == 0
    cfg = {"name": "tiny-qa", "base_model": "tiny", "dataset": "qa-train:1", "device": "cpu", "lora": {"r": 4, "alpha": 8},
           "train": {"max_seq_len": 512, "batch_tokens": 1024, "lr": 3e-2, "max_steps": 2, "schedule": "constant"}, "guards": {"eos": "off"}}
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    res = _cli(home, "finetune", "-c", str(path), "--json")
    assert res.exit_code == 0, res.output
    reg = json.loads(res.stdout)["registration"]
    assert reg["registered"], reg
    ds = store.training_dataset("qa-train:1")
    assert reg["encoder_fingerprint"] == ds.describe()["encoder"]["fingerprint"]

    shown = json.loads(_cli(home, "models", "show", reg["ref"], "--json").stdout)["model_version"]
    assert shown["training_dataset"] == "qa-train:1"
    lin = shown["lineage"]["training_dataset"]
    assert lin["resolved"], lin
    assert {(s["feature_group"], s["commit"]) for s in lin["dataset"]["sources"]} == {("qa:1", qa.resolve_commit()), ("docs:1", docs.resolve_commit())}
    assert lin["dataset"]["content_hash"] == ds.content_hash
    assert shown["adapter_sha256"] and shown["metrics"]["steps"] == 2 and shown["config"]["dataset"] == "qa-train:1"
    card = _cli(home, "models", "card", reg["ref"]).stdout
    assert "qa-train:1" in card and ds.content_hash in card and '"qa:1"' in card


def test_encoding_with_a_model_version_pins_its_encoder(project, home):
    from llmfti.registry import ModelRegistry
    from llmfti.transforms.model_dependent import FingerprintMismatch

    store, *_ = project
    mv = ModelRegistry(home).ensure_base_version("tiny")
    ds = create_dataset(store, name="mv", source="qa", model=mv.ref)
    e = ds.describe()["encoder"]
    assert e["model"] == {"kind": "model_version", "ref": mv.ref} and e["fingerprint"] == mv.encoder_fingerprint
    assert recreate_dataset(ds)["identical"]
    with pytest.raises(FingerprintMismatch, match="prompt template"):  # a version's encoder is not overridable
        create_dataset(store, name="mv", source="qa", model=mv.ref, prompt_template="plain")
