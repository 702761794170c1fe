"""Model registry: base-model import, version round-trips and increments, pinned encoders verified on
load (tampering names the difference), training/serving encoding identity, status, evals, cards."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmfti.errors import ConfigError, IncompatibleError, NotFoundError
from llmfti.registry import CheckFailed, ModelRegistry
from llmfti.testing.tiny_models import save_tiny_adapter, save_tiny_model, tiny_tokenizer
from llmfti.transforms.model_dependent import Context, FingerprintMismatch, PromptEncoder, PromptTooLong
from llmfti.transforms.model_dependent.fingerprint import LABELS, chat_template_fingerprint, tokenizer_fingerprint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    model = save_tiny_model(root / "model")
    return {"model": model, "adapter": save_tiny_adapter(model, root / "adapter")}


@pytest.fixture(scope="module")
def reg(tmp_path_factory, tiny):
    registry = ModelRegistry(tmp_path_factory.mktemp("home"))
    registry.import_base_model(str(tiny["model"]), "tiny", license="apache-2.0")
    return registry


def _encoder(budget=512):
    return PromptEncoder(tiny_tokenizer(), "rag-default", max_prompt_tokens=budget, max_answer_tokens=64)


def test_import_records_what_the_base_model_is(reg, tiny):
    import torch
    from transformers import AutoModelForCausalLM

    b = reg.get_base("tiny")
    assert b["source_kind"] == "folder" and b["license"] == "apache-2.0"
    assert b["architecture"] == "LlamaForCausalLM" and b["context_length"] == 2048
    with torch.no_grad():
        model = AutoModelForCausalLM.from_pretrained(str(tiny["model"]))
    assert b["parameters"] == sum(p.numel() for p in model.parameters())  # tied weights counted once
    tok = tiny_tokenizer()
    assert b["tokenizer_fingerprint"] == tokenizer_fingerprint(tok)
    assert b["chat_template_fingerprint"] == chat_template_fingerprint(tok)
    folder = reg.home.root / b["path"]
    assert folder == reg.home.models_dir / "base" / "tiny" and (folder / "model.safetensors").is_file()
    assert json.loads((folder / "llmfti_source.json").read_text())["weights_sha256"] == b["weights_sha256"]
    assert reg.import_base_model(str(tiny["model"]), "tiny")["status"] == "present"


def test_import_refuses_another_source_under_an_existing_name(reg, tmp_path):
    other = save_tiny_model(tmp_path / "other", seed=7)
    with pytest.raises(ConfigError, match="already exists"):
        reg.import_base_model(str(other), "tiny")
    with pytest.raises(NotFoundError):
        reg.import_base_model(str(tmp_path / "nope"), "x")


def test_register_round_trip_and_version_increments(reg, tiny):
    enc = _encoder()
    cfg = {"lora_r": 4, "epochs": 1}
    v1 = reg.register_version("rt", base_model="tiny", adapter_dir=str(tiny["adapter"]), encoder=enc, training_dataset="qa:2", metrics={"eval_loss": 1.25}, config=cfg)
    v2 = reg.register_version("rt", base_model="tiny", encoder=enc)
    assert (v1.version, v2.version) == (1, 2)
    got = reg.get("rt:1")
    assert got.base_model == "tiny" and got.status == "registered" and got.training_dataset == "qa:2"
    assert got.metrics == {"eval_loss": 1.25} and got.config == cfg
    assert got.encoder_fingerprint == enc.fingerprint and got.fingerprint_components == enc.fingerprint_components
    assert got.adapter_sha256 and (got.adapter_dir / "adapter_config.json").is_file()
    assert got.path == reg.home.models_dir / "versions" / "rt" / "1"
    side = json.loads((got.path / "config.json").read_text())
    assert side["encoder_fingerprint"] == enc.fingerprint and side["adapter_sha256"] == got.adapter_sha256 and side["base_model"] == "tiny"
    assert reg.get("rt").version == 2 and reg.get("rt:2").adapter_sha256 is None
    assert [mv.ref for mv in reg.list() if mv.name == "rt"] == ["rt:1", "rt:2"]
    assert reg.load_encoder("rt:1").fingerprint == enc.fingerprint
    with pytest.raises(NotFoundError, match="versions of 'rt': \\[1, 2\\]"):
        reg.get("rt:9")
    with pytest.raises(NotFoundError):
        reg.register_version("rt", base_model="missing")


def test_base_version_without_adapter_serves_the_base_as_is(reg):
    mv = reg.ensure_base_version("tiny")
    assert mv.ref == "tiny:1" and mv.adapter_sha256 is None and mv.prompt_template == "rag-default"
    assert reg.ensure_base_version("tiny").ref == "tiny:1"  # idempotent
    model, tokenizer, encoder = reg.load_model("tiny:1")
    assert encoder.fingerprint == mv.encoder_fingerprint and tokenizer is encoder.tokenizer


def test_load_model_applies_the_adapter(reg, tiny):
    import torch

    mv = reg.register_version("ad", base_model="tiny", adapter_dir=str(tiny["adapter"]), encoder=_encoder())
    base_model, _, _ = reg.load_model(reg.ensure_base_version("tiny").ref)
    model, _, enc = reg.load_model(mv.ref)
    ids = torch.tensor([enc.encode_prompt("What does yield do?", [Context("c", "Generators yield.")]).input_ids])
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, base_model(ids).logits)


@pytest.mark.parametrize(
    "target, component",
    [("tokenizer/chat_template.jinja", "chat_template"), ("tokenizer/tokenizer.json", "tokenizer_files"), ("prompt_template.yaml", "prompt_template")],
)
def test_tampered_files_make_loading_fail_naming_the_difference(reg, target, component):
    mv = reg.register_version(f"tamper-{component}", base_model="tiny", encoder=_encoder())
    f = mv.path / target
    if target.endswith("tokenizer.json"):
        spec = json.loads(f.read_text())
        vocab = spec["model"]["vocab"]
        a, b = list(vocab)[300:302]
        vocab[a], vocab[b] = vocab[b], vocab[a]  # two tokens swap ids: same size, different encoding
        f.write_text(json.dumps(spec))
    elif target.endswith(".jinja"):
        f.write_text(f.read_text().replace("'\\n'", "'\\n\\n'", 1))
    else:
        f.write_text(f.read_text().replace("Cite the contexts", "Quote the contexts"))
    with pytest.raises(FingerprintMismatch) as err:
        reg.load_encoder(mv.ref)
    assert err.value.differences == [component]
    assert LABELS[component] in str(err.value)
    with pytest.raises(IncompatibleError):
        reg.load_model(mv.ref)
    with pytest.raises(CheckFailed) as failed:
        reg.check(mv.ref)
    assert [f["check"] for f in failed.value.report.failures] == [component]
    assert failed.value.to_dict()["differences"] == [component]


def test_byte_only_change_to_a_pinned_file_is_still_refused(reg):
    mv = reg.register_version("bytes", base_model="tiny", encoder=_encoder())
    f = mv.tokenizer_dir / "tokenizer_config.json"
    f.write_text(f.read_text() + "\n\n")
    with pytest.raises(FingerprintMismatch, match="tokenizer files.*tokenizer_config.json \\(changed\\)"):
        reg.load_encoder(mv.ref)


def test_overrides_must_reproduce_the_registered_fingerprint(reg):
    mv = reg.register_version("ovr", base_model="tiny", encoder=_encoder(512))
    assert reg.load_encoder(mv.ref, template="rag-default", max_prompt_tokens=512).fingerprint == mv.encoder_fingerprint
    with pytest.raises(FingerprintMismatch, match="budget") as err:
        reg.load_encoder(mv.ref, max_prompt_tokens=256)
    assert err.value.differences == ["budget"]
    with pytest.raises(FingerprintMismatch, match="prompt template"):
        reg.load_encoder(mv.ref, template="plain")


def test_check_reports_changed_weights_and_adapter(reg, tiny, tmp_path):
    reg.import_base_model(str(save_tiny_model(tmp_path / "w", seed=3)), "tiny-w")
    mv = reg.register_version("wt", base_model="tiny-w", adapter_dir=str(tiny["adapter"]), encoder=_encoder())
    assert reg.check(mv.ref).ok
    (mv.adapter_dir / "adapter_model.safetensors").write_bytes(b"junk")
    weights = reg.base_path("tiny-w") / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(CheckFailed) as err:
        reg.check(mv.ref)
    assert {f["check"] for f in err.value.report.failures} == {"base_weights", "adapter"}
    with pytest.raises(IncompatibleError, match="weights"):
        reg.load_model(mv.ref)


def test_status_evals_and_status_refs(reg):
    mv = reg.register_version("st", base_model="tiny", encoder=_encoder())
    reg.register_version("st", base_model="tiny", encoder=_encoder())
    assert reg.set_status(mv.ref, "production").status == "production"
    assert reg.get("st:production").ref == mv.ref and reg.get("st").version == 2
    with pytest.raises(ConfigError, match="invalid status"):
        reg.set_status(mv.ref, "live")
    reg.record_eval(mv.ref, {"suite": "python-qa", "feature_group": "docs:1", "metrics": {"faithfulness": 0.81}, "passed": True})
    evals = reg.get(mv.ref).evals
    assert len(evals) == 1 and evals[0]["metrics"]["faithfulness"] == 0.81 and evals[0]["recorded_at"]
    typed = reg.evals(mv.ref)
    assert typed[0].passed and typed[0].model == mv.ref and typed[0].feature_group == "docs:1"
    with pytest.raises(ValueError):  # typed: a free-form key is refused, not stored as an unwritten contract
        reg.record_eval(mv.ref, {"suite": "python-qa", "passed": True, "faithfulness": 0.81})


def test_model_card_contains_lineage_metrics_and_evals(reg, tiny):
    lineage_in = {"ref": "qa:3", "records": {"feature_group": "qa:1", "commit": 7}, "contexts": {"feature_group": "docs:1", "commit": 12}}
    mv = reg.register_version("card", base_model="tiny", adapter_dir=str(tiny["adapter"]), encoder=_encoder(), training_dataset="qa:3",
                              dataset_lineage=lineage_in,
                              metrics={"eval_loss": 0.9}, config={"intended_use": "Answering Python questions.", "lora_r": 4})
    reg.record_eval(mv.ref, {"suite": "python-qa", "passed": False, "metrics": {"answer_relevancy": 0.7}})
    md = reg.model_card(mv.ref)
    for needle in ("# Model card: card:1", "## Intended use", "Answering Python questions.", "## Data lineage", "`qa:3`", "`tiny`",
                   reg.get_base("tiny")["weights_sha256"], "eval_loss", "answer_relevancy", "## Limitations", mv.encoder_fingerprint, "lora_r"):
        assert needle in md, needle
    lineage = reg.describe(mv.ref)
    ds = lineage["lineage"]["training_dataset"]
    assert ds == {"ref": "qa:3", "resolved": True, "dataset": lineage_in} and lineage["base"]["name"] == "tiny"
    assert '"commit": 12' in md  # the feature-group commits the data came from are in the card
    # A reference without its lineage is recorded as unresolved, never passed off as resolved.
    bare = reg.register_version("card", base_model="tiny", encoder=_encoder(), training_dataset="nope:1")
    assert reg.describe(bare.ref)["lineage"]["training_dataset"]["resolved"] is False


def test_concurrent_registrations_in_threads_get_distinct_versions(reg):
    enc, results, errors = _encoder(), [], []

    def work():
        try:
            results.append(reg.register_version("thr", base_model="tiny", encoder=enc).version)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(results) == [1, 2, 3, 4]
    assert [mv.version for mv in reg.versions("thr")] == [1, 2, 3, 4]


@pytest.fixture(scope="module")
def two_paths(reg):
    """The training side builds its encoder in memory; serving loads the registered one from disk."""
    training = PromptEncoder(tiny_tokenizer(), "rag-default", max_prompt_tokens=300, max_answer_tokens=32)
    mv = reg.register_version("paths", base_model="tiny", encoder=training)
    return training, reg.load_encoder(mv.ref)


_texts = st.lists(st.sampled_from(["yield", "the", "loop", "数据", "{q}", "\n", "[2]"]) | st.text(max_size=10), max_size=10).map(" ".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=_texts, a=_texts, ctx=st.lists(_texts, max_size=5))
def test_training_and_serving_paths_give_identical_prompt_ids(two_paths, q, a, ctx):
    training, serving = two_paths
    contexts = [Context(f"c{i}", t) for i, t in enumerate(ctx)]
    try:
        served = serving.encode_prompt(q, contexts)
    except PromptTooLong:
        return
    example = training.encode_example(q, a, contexts)
    assert example.input_ids[: example.prompt_length] == served.input_ids
    assert served.fingerprint == example.fingerprint
