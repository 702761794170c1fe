"""Preference alignment (finetune method: dpo) on TRL, end to end on a tiny model: an SFT version is the
parent, a preference dataset encoded with the parent's encoder is the data, TRL trains the parent's
adapter against a frozen copy of it, the guards run, and the result is a registered model version whose
lineage names the parent and the preference dataset. Also: the pre-tokenized pairs reach TRL unchanged
(no chat template applied again), the config's checks, and the guard against an alignment that changed
nothing. A slow test runs a bounded DPO on the embedded default SmolLM2 on CPU."""

from __future__ import annotations

import pytest

from td_fixtures import QA, import_tiny, ingest_docs, ingest_records, qa_rows, tiny_chat_model, write_jsonl

pytest.importorskip("trl")

WRONG = {"q-with": "It opens a file.", "q-exit": "No, never.", "q-for": "A number.", "q-while": "Forever.", "q-gen": "They sort lists.",
         "q-state": "No, they forget everything."}


def _dpo_cfg(dataset, **over):
    from llmfti.config import FinetuneConfig

    base = dict(name="tiny-dpo", base_model="tiny", method="dpo", dataset=dataset, device="cpu",
                lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
                train={"max_steps": 8, "lr": 5e-3, "max_seq_len": 512, "batch_tokens": 512, "warmup_steps": 0, "schedule": "constant"},
                dpo={"beta": 0.1, "pairs_per_batch": 3}, guards={"eos": "warn", "eos_probes": 1, "eos_max_new_tokens": 4})
    for key, value in over.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return FinetuneConfig(**base)


@pytest.fixture
def sft_parent(store, home, tmp_path, corpus, hash_config):
    """tiny-sft:1, a LoRA SFT version of the tiny model on the Q&A records, and a preference group
    (the reference answers against wrong ones)."""
    from llmfti.config import FeatureConfig, FinetuneConfig
    from llmfti.pipelines.feature import ingest
    from llmfti.pipelines.training import finetune
    from llmfti.pipelines.training_dataset import create

    ingest_docs(store, corpus, hash_config)
    ingest_records(store, write_jsonl(tmp_path / "qa.jsonl", qa_rows()))
    import_tiny(home, tiny_chat_model(tmp_path / "tiny"))
    sft_ds = create(store, name="qa-train", source="qa", contexts="docs", top_k=1, model="tiny")
    cfg = FinetuneConfig(name="tiny-sft", base_model="tiny", dataset=sft_ds.ref, device="cpu", guards={"eos": "off"},
                         lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
                         train=dict(max_seq_len=512, batch_tokens=1024, lr=3e-2, max_steps=3, schedule="constant"))
    sft = finetune(cfg, home=home, progress=False)
    assert sft["registration"]["ref"] == "tiny-sft:1"
    pairs = [{"id": i, "prompt": q, "chosen": a, "rejected": WRONG[i], "event_time": t} for i, q, a, t in QA]
    ingest(store.feature_group("prefs", must_exist=False), [str(write_jsonl(tmp_path / "prefs.jsonl", pairs))],
           config=FeatureConfig(kind="preferences", embedder={"model": "hash-64"}))
    return "tiny-sft:1"


def test_dpo_from_an_sft_parent_end_to_end(store, home, sft_parent):
    import torch

    from llmfti.pipelines.training import finetune
    from llmfti.pipelines.training_dataset import create
    from llmfti.registry import ModelRegistry

    prefs = create(store, name="prefs", source="prefs", contexts="docs", top_k=1, model=sft_parent, split=1.0)
    res = finetune(_dpo_cfg(prefs.ref, parent_model=sft_parent), home=home, progress=False)
    m = res["metrics"]
    # DPO starts at the reference (loss ln 2, margin 0) and moves the policy towards the chosen answers.
    assert m["eval_loss_start"] == pytest.approx(0.693147, abs=1e-4) and m["eval_margins_start"] == pytest.approx(0.0, abs=1e-6)
    assert m["eval_margins_end"] > 0.1 and m["eval_loss_end"] < m["eval_loss_start"] and m["eval_accuracies_end"] > 0.5
    assert res["guards"]["policy_logit_delta"] > 1e-4 and res["guards"]["eos"]["checked"]

    reg = ModelRegistry(home)
    mv = reg.get(res["registration"]["ref"])
    parent = reg.get(sft_parent)
    alignment = mv.lineage["training_dataset"]["dataset"]["alignment"]
    assert mv.training_dataset == prefs.ref and alignment["method"] == "dpo" and alignment["parent"]["ref"] == sft_parent
    assert alignment["parent"]["training_dataset"] == "qa-train:1" and mv.config["method"] == "dpo" and mv.config["parent_model"] == sft_parent
    assert mv.encoder_fingerprint == parent.encoder_fingerprint  # served exactly as the parent: the same prompts
    assert "ref" not in (mv.adapter_dir / "adapter_config.json").read_text() and not (mv.adapter_dir / "ref").exists()

    # The registered adapter is the parent's, trained further: it serves on its own and differs from the parent.
    model, _, _ = reg.load_model(mv.ref)
    parent_model, _, _ = reg.load_model(sft_parent)
    ex = prefs.examples()[0]
    x = torch.tensor([list(ex["prompt_ids"]) + list(ex["chosen_ids"])])
    with torch.no_grad():
        aligned, before = model(input_ids=x).logits, parent_model(input_ids=x).logits
        with model.disable_adapter():
            base = model(input_ids=x).logits
    assert (aligned - before).abs().max() > 1e-4 and (before - base).abs().max() > 1e-4

    # The chosen answers became more likely relative to the rejected ones, under the registered model.
    def logp(mdl, answer_key):
        total = 0.0
        for e in prefs.examples():
            ids = list(e["prompt_ids"]) + list(e[answer_key])
            with torch.no_grad():
                lp = torch.log_softmax(mdl(input_ids=torch.tensor([ids])).logits[0, :-1].float(), -1)
            n = len(e["prompt_ids"])
            total += float(lp[torch.arange(n - 1, len(ids) - 1), torch.tensor(ids[n:])].sum())
        return total

    assert logp(model, "chosen_ids") - logp(model, "rejected_ids") > logp(parent_model, "chosen_ids") - logp(parent_model, "rejected_ids")


def test_pretokenized_pairs_reach_trl_unchanged(home, tmp_path):
    from llmfti.config import FinetuneConfig
    from llmfti.training import align
    from llmfti.training.model_setup import load_base
    from llmfti.testing.tiny_models import save_tiny_model

    import torch

    from llmfti.training.model_setup import lora_config

    folder = save_tiny_model(tmp_path / "tiny")
    model, tok = load_base(str(folder), dtype=torch.float32, attn="sdpa", device=torch.device("cpu"))
    # Ids a chat template would never produce: TRL must train on them as they are.
    pairs = [{"prompt_ids": [5, 6, 7, 8], "chosen_ids": [9, 10, tok.eos_token_id], "rejected_ids": [11, tok.eos_token_id]}]
    cfg = FinetuneConfig(name="t", base_model=str(folder), method="dpo", dataset="x:1", device="cpu", train={"max_steps": 1})
    args = align.dpo_arguments(cfg, tmp_path / "run", torch.device("cpu"), progress=False)
    trainer = align._trainer_class()(model=model, args=args, train_dataset=align._dataset(pairs), processing_class=tok,
                                     peft_config=lora_config(cfg.lora, model))
    row = trainer.train_dataset[0]
    assert {k: row[k] for k in align.PAIR_KEYS} == pairs[0]
    batch = trainer.data_collator([row])
    assert batch["input_ids"][0].tolist() == [5, 6, 7, 8, 9, 10, tok.eos_token_id]
    assert batch["completion_mask"][0].tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_dpo_config_checks():
    from pydantic import ValidationError

    from llmfti.config import FinetuneConfig

    with pytest.raises(ValidationError, match="preference training dataset"):
        FinetuneConfig(name="a", base_model="b", method="dpo", data_path="x.jsonl")
    with pytest.raises(ValidationError, match="parent_model applies to method dpo"):
        FinetuneConfig(name="a", base_model="b", dataset="d:1", parent_model="m:1")
    with pytest.raises(ValidationError, match="NAME:N"):
        FinetuneConfig(name="a", base_model="b", dataset="d:1", method="dpo", parent_model="m")
    cfg = FinetuneConfig(name="a", base_model="b", dataset="d:1", method="dpo", dpo={"beta": 0.5, "loss_type": "ipo"})
    assert cfg.dpo.beta == 0.5 and cfg.parent_model is None


def test_dpo_refuses_mismatched_data_and_an_alignment_that_changes_nothing(store, home, sft_parent):
    from llmfti.errors import ConfigError, IncompatibleError
    from llmfti.pipelines.training import finetune
    from llmfti.pipelines.training_dataset import create
    from llmfti.training.guards import AdapterNoOpError

    other_budget = create(store, name="prefs-512", source="prefs", model="tiny", max_prompt_tokens=512, split=1.0)
    with pytest.raises(IncompatibleError, match="create the preference dataset with --model tiny-sft:1|would not be the ones"):
        finetune(_dpo_cfg(other_budget.ref, parent_model=sft_parent), home=home, progress=False)
    sft_data = store.training_dataset("qa-train:1")
    with pytest.raises(ConfigError, match="not preference pairs"):
        finetune(_dpo_cfg(sft_data.ref), home=home, progress=False)
    prefs = create(store, name="prefs", source="prefs", model="tiny", split=1.0)
    with pytest.raises(ConfigError, match="method: dpo"):
        from llmfti.config import FinetuneConfig

        finetune(FinetuneConfig(name="x", base_model="tiny", dataset=prefs.ref, device="cpu"), home=home, progress=False)
    # A fresh adapter trained with a learning rate that cannot move it: the guard fails the run (exit code 6).
    with pytest.raises(AdapterNoOpError) as err:
        finetune(_dpo_cfg(prefs.ref, name="noop", train={"lr": 1e-12, "max_steps": 1}), home=home, progress=False)
    assert err.value.exit_code == 6


@pytest.mark.slow
def test_bounded_dpo_on_the_embedded_default_on_cpu(store, home, tmp_path):
    """SmolLM2-135M-Instruct with bf16 autocast on CPU, 8 pairs, 4 steps: the config runs unchanged on the
    embedded default (the same config runs on a GPU, precision auto giving bf16 weights there)."""
    from llmfti.config import FeatureConfig
    from llmfti.home import ProjectHome
    from llmfti.pipelines.feature import ingest
    from llmfti.pipelines.training import finetune
    from llmfti.pipelines.training_dataset import create
    from llmfti.registry.defaults import pull_defaults

    pull_defaults(ProjectHome.at(home))
    pairs = [{"id": i, "prompt": q, "chosen": a, "rejected": WRONG[i], "event_time": t} for i, q, a, t in QA]
    ingest(store.feature_group("prefs", must_exist=False), [str(write_jsonl(tmp_path / "prefs.jsonl", pairs))],
           config=FeatureConfig(kind="preferences", embedder={"model": "hash-64"}))
    prefs = create(store, name="prefs", source="prefs", model="SmolLM2-135M-Instruct:1", split=1.0)
    res = finetune(_dpo_cfg(prefs.ref, base_model="SmolLM2-135M-Instruct", parent_model="SmolLM2-135M-Instruct:1", precision="bf16",
                            lora={"r": 8, "alpha": 16, "target_modules": "all-linear"}, train={"max_steps": 4, "lr": 5e-5},
                            dpo={"pairs_per_batch": 2}, guards={"eos": "warn", "eos_probes": 1, "eos_max_new_tokens": 32}),
                   home=home, progress=False)
    m = res["metrics"]
    assert res["registration"]["registered"] and m["steps"] == 4 and m["eval_margins_end"] > m["eval_margins_start"]
