"""GPU: fine-tune a random-init model shaped like SmolLM2-135M for a few bf16 steps and register it."""

from __future__ import annotations

import pytest

from finetune_tiny import finetune_tiny_examples, finetune_tiny_tokenizer, finetune_write_jsonl


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _cuda(), reason="needs CUDA")]

SMOLLM2_135M_SHAPE = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                          intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True, max_position_embeddings=2048)


def test_smollm2_shape_bf16_few_steps_and_register(tmp_path, home):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmfti.config import FinetuneConfig
    from llmfti.pipelines.training import finetune

    base = tmp_path / "smollm2-135m-random"
    tok = finetune_tiny_tokenizer()  # ids stay < 43: valid for the 49k vocabulary
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, **SMOLLM2_135M_SHAPE)).save_pretrained(base)
    tok.save_pretrained(base)
    data = finetune_write_jsonl(tmp_path / "d.jsonl", finetune_tiny_examples(256, min_len=20, max_len=200))
    cfg = FinetuneConfig(name="smol-gpu", base_model=str(base), data_path=str(data), device="cuda",
                         train={"max_seq_len": 1024, "batch_tokens": 8192, "max_steps": 6, "lr": 1e-3, "schedule": "constant"},
                         guards={"eos": "off"})
    res = finetune(cfg, home=home, progress=False)
    m = res["metrics"]
    assert m["dtype"] == "bfloat16" and m["device"].startswith("cuda")
    assert m["eval_loss"] < m["eval_loss_start"]
    assert res["guards"]["adapter_logit_delta"] > 0
    reg = res["registration"]
    assert reg["registered"] is False and "no prompt encoder" in reg["reason"]  # a bare JSONL knows no encoder
