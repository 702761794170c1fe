"""End-to-end fine-tuning on a tiny random Llama (CPU): loss goes down, the adapter reloads and changes
outputs, resume continues exactly where a crashed run stopped, and the guards fire."""

from __future__ import annotations

import json

import pytest

from finetune_tiny import finetune_tiny_base, finetune_tiny_examples, finetune_write_jsonl
from llmfti.pipelines.training_dataset import create as create_dataset


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return finetune_tiny_base(tmp_path_factory.mktemp("base") / "tiny-llama")


def _cfg(tmp_path, base, output_dir=None, **train):
    from llmfti.config import FinetuneConfig

    data = finetune_write_jsonl(tmp_path / "data.jsonl", finetune_tiny_examples(24, seed=0))
    t = dict(max_seq_len=64, batch_tokens=128, lr=3e-2, max_steps=6, warmup_steps=0, schedule="constant", seed=0)
    t.update(train)
    return FinetuneConfig(name="tiny", base_model=str(base), data_path=str(data), eval_fraction=0.2,
                          device="cpu", lora={"r": 8, "alpha": 16}, train=t, guards={"eos": "off"},
                          output_dir=output_dir)


def test_few_steps_reduce_loss_and_adapter_reloads_and_changes_outputs(tmp_path, home, tiny_base):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from llmfti.pipelines.training import finetune

    res = finetune(_cfg(tmp_path, tiny_base, max_steps=8), home=home, progress=False)
    m = res["metrics"]
    assert m["eval_loss"] < m["eval_loss_start"] * 0.9
    assert m["train_loss_final"] < m["train_loss_first"]
    assert m["eval_loss"] is not None and m["loss_tokens"] > 0 and m["loss_tokens_per_s"] > 0
    assert res["guards"]["adapter_logit_delta"] > 1e-4
    assert len(res["adapter_sha256"]) == 64
    saved = json.loads((tmp_path / "home" / "artifacts" / "runs" / "finetune" / "tiny").glob("run-*/result.json").__next__().read_text())
    assert saved["training_dataset"].startswith("file:")
    # a bare JSONL knows no prompt encoder: registering would pin a guessed one, so it is not registered
    assert not res["registration"]["registered"] and "encoder" in res["registration"]["reason"]
    # the saved adapter, loaded fresh onto the base, changes the output
    x = torch.tensor([finetune_tiny_examples(1, seed=9)[0]["input_ids"]])
    base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    with torch.no_grad():
        before = base(input_ids=x).logits
        tuned = PeftModel.from_pretrained(base, res["adapter_dir"]).eval()
        after = tuned(input_ids=x).logits
    assert (after - before).abs().max() > 1e-3


def test_registered_adapter_loads_through_the_registry(tmp_path, home, corpus, hash_config):
    """Trained from a training dataset, the result is a model version (encoder = the dataset's) whose
    adapter loads through ModelRegistry.load_model and changes the outputs of the base."""
    import torch

    from llmfti.config import FinetuneConfig
    from llmfti.registry import ModelRegistry
    from llmfti.store import FeatureStore
    from llmfti.pipelines.training import finetune
    from td_fixtures import import_tiny, ingest_docs, ingest_records, qa_rows, tiny_chat_model, write_jsonl

    store = FeatureStore(home)
    ingest_docs(store, corpus, hash_config)
    ingest_records(store, write_jsonl(tmp_path / "qa.jsonl", qa_rows()))
    import_tiny(home, tiny_chat_model(tmp_path / "tiny"))
    ds = create_dataset(store, name="qa-train", source="qa", contexts="docs", top_k=1, model="tiny")
    cfg = FinetuneConfig(name="tiny-qa", base_model="tiny", dataset=ds.ref, device="cpu", lora={"r": 4, "alpha": 8}, guards={"eos": "off"},
                         train=dict(max_seq_len=512, batch_tokens=1024, lr=3e-2, max_steps=3, schedule="constant"))
    res = finetune(cfg, home=home, progress=False)
    assert res["registration"]["registered"], res["registration"]
    model, tok, enc = ModelRegistry(home).load_model(res["registration"]["ref"])
    assert enc.fingerprint == ds.describe()["encoder"]["fingerprint"]
    x = torch.tensor([ds.examples()[0]["input_ids"]])
    with torch.no_grad():
        with model.disable_adapter():
            off = model(input_ids=x).logits
        on = model(input_ids=x).logits
    assert (on - off).abs().max() > 1e-4


def test_resume_continues_from_the_latest_checkpoint(tmp_path, home, tiny_base, monkeypatch):
    from safetensors.torch import load_file

    from llmfti.pipelines.training import finetune
    from llmfti.training.trainer import Trainer

    full = finetune(_cfg(tmp_path / "a", tiny_base, max_steps=5, checkpoint_every=2, output_dir=str(tmp_path / "full")),
                    home=home, progress=False, register=False)

    real_step = Trainer.train_step

    def crash_at_4(self, step):
        if step == 3:  # 0-based: steps 1..3 done, checkpoint at 2 written
            raise KeyboardInterrupt("simulated crash")
        return real_step(self, step)

    cfg = _cfg(tmp_path / "b", tiny_base, max_steps=5, checkpoint_every=2, output_dir=str(tmp_path / "crashy"))
    monkeypatch.setattr(Trainer, "train_step", crash_at_4)
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, home=home, progress=False, register=False)
    assert (tmp_path / "crashy" / "checkpoints" / "step-000002" / "trainer_state.pt").is_file()
    monkeypatch.setattr(Trainer, "train_step", real_step)
    resumed = finetune(cfg, home=home, progress=False, register=False)
    assert resumed["metrics"]["resumed_from"].endswith("step-000002")
    assert resumed["metrics"]["steps"] == 5
    # same data order, optimizer and RNG state: the resumed run ends where the uninterrupted one did
    a = load_file(f"{full['adapter_dir']}/adapter_model.safetensors")
    b = load_file(f"{resumed['adapter_dir']}/adapter_model.safetensors")
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-5, k
    # resuming with different data-defining settings is refused
    from llmfti.errors import ConfigError

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "checkpoints").symlink_to(tmp_path / "crashy" / "checkpoints")
    bad = _cfg(tmp_path / "c", tiny_base, max_steps=5, seed=1, output_dir=str(tmp_path / "other"))
    with pytest.raises(ConfigError, match="other data or model settings"):
        finetune(bad, home=home, progress=False, register=False)


def test_guard_fires_on_a_noop_adapter(tiny_base):
    from transformers import AutoModelForCausalLM

    from llmfti.config.finetune import LoraSettings
    from llmfti.training.guards import AdapterNoOpError, TrainingGuardError, check_adapter_changes_output
    from llmfti.training.model_setup import add_lora

    pm = add_lora(AutoModelForCausalLM.from_pretrained(tiny_base), LoraSettings(r=4), seed=0)  # B = 0: a no-op
    with pytest.raises(AdapterNoOpError) as err:
        check_adapter_changes_output(pm, finetune_tiny_examples(1)[0]["input_ids"])
    assert isinstance(err.value, TrainingGuardError) and err.value.exit_code == 6


def test_eos_guards(tiny_base, tmp_path, home):
    from transformers import AutoModelForCausalLM

    from llmfti.pipelines.training import finetune
    from llmfti.training.guards import NoEosError, check_emits_eos, check_labels_end_with_eos, prompt_of

    with pytest.raises(NoEosError, match="no training answer ends with EOS"):
        check_labels_end_with_eos(finetune_tiny_examples(4, eos=False), {2})
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    prompts = [prompt_of(e) for e in finetune_tiny_examples(2)]
    with pytest.raises(NoEosError, match="emitted EOS"):  # an id the model can never produce
        check_emits_eos(model, prompts, {10_000}, max_new_tokens=4, pad_id=0)
    assert check_emits_eos(model, prompts, {10_000}, max_new_tokens=4, pad_id=0, mode="warn")["warning"]
    # the pipeline refuses data without EOS before training
    from llmfti.config import FinetuneConfig

    data = finetune_write_jsonl(tmp_path / "noeos.jsonl", finetune_tiny_examples(8, eos=False))
    cfg = FinetuneConfig(name="t", base_model=str(tiny_base), data_path=str(data), device="cpu", train={"max_seq_len": 64, "batch_tokens": 128})
    with pytest.raises(NoEosError):
        finetune(cfg, home=home, progress=False)


def test_trained_model_emits_eos_and_passes_all_guards(tmp_path, home, tiny_base):
    from llmfti.pipelines.training import finetune

    cfg = _cfg(tmp_path, tiny_base, max_steps=40, lr=2e-2).model_copy(
        update={"guards": _cfg(tmp_path, tiny_base).guards.model_copy(update={"eos": "error", "eos_max_new_tokens": 24})}
    )
    res = finetune(cfg, home=home, progress=False)
    assert res["guards"]["eos"]["with_eos"] >= res["guards"]["eos"]["probes"] / 2


def test_variants_agree_checkpointing_and_unfused_loss_and_padded_batches_train(tmp_path, home, tiny_base):
    """Activation checkpointing and the unfused loss change memory, not results; padded batches also learn."""
    from llmfti.pipelines.training import finetune

    def run(sub, **upd):
        cfg = _cfg(tmp_path / sub, tiny_base, max_steps=3).model_copy(update=upd)
        return finetune(cfg, home=home, progress=False, register=False, resume=False)["metrics"]

    import warnings

    ref = run("ref")
    for sub, upd in [("gc", {"gradient_checkpointing": True}), ("unfused", {"fused_loss": False})]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert run(sub, **upd)["eval_loss"] == pytest.approx(ref["eval_loss"], rel=1e-4), sub
        # our own calls use transformers' current names (gradient_checkpointing_enable warned)
        assert not [w for w in caught if issubclass(w.category, FutureWarning) and "checkpointing" in str(w.message)], sub
    padded = _cfg(tmp_path / "pad", tiny_base, max_steps=3, packing=False)
    m = finetune(padded, home=home, progress=False, register=False, resume=False)["metrics"]
    assert m["eval_loss"] < m["eval_loss_start"]


def test_cpu_bf16_autocast_trains_like_fp32(tmp_path, home, tiny_base):
    """precision bf16 on CPU: fp32 weights and LoRA, bf16 matmuls; it learns like fp32 does."""
    from llmfti.pipelines.training import finetune

    fp32 = finetune(_cfg(tmp_path / "a", tiny_base, max_steps=6), home=home, progress=False, register=False)
    cfg = _cfg(tmp_path / "b", tiny_base, max_steps=6).model_copy(update={"precision": "bf16"})
    bf16 = finetune(cfg, home=home, progress=False, register=False)
    a, b = fp32["metrics"], bf16["metrics"]
    assert b["compute_dtype"] == "bfloat16" and b["dtype"] == "float32" and a["compute_dtype"] == "float32"
    assert b["eval_loss"] < b["eval_loss_start"]
    assert abs(b["train_loss_first"] - a["train_loss_first"]) < 0.05 * a["train_loss_first"]


def test_last_layers_adapts_only_the_top_layers():
    """lora.last_layers: the LoRA weights sit in the last N decoder layers only (backward stops there)."""
    from llmfti.config.finetune import LoraSettings
    from llmfti.testing.tiny_models import tiny_llama
    from llmfti.training.model_setup import add_lora

    model = add_lora(tiny_llama(64), LoraSettings(r=2, last_layers=1), seed=0)
    adapted = {name.split(".layers.")[1].split(".")[0] for name, _ in model.named_parameters() if "lora_A" in name}
    n = model.get_base_model().config.num_hidden_layers
    assert adapted == {str(n - 1)} and n > 1
    names = {name.split(".lora_A")[0].rsplit(".", 1)[-1] for name, _ in model.named_parameters() if "lora_A" in name}
    assert {"q_proj", "v_proj", "down_proj"} <= names  # all linear modules of that layer
