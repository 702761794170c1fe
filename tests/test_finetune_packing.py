"""Packing: rows respect capacity, targets never cross examples, and the packed loss equals the
per-example loss (the proof that packed examples do not attend to each other)."""

from __future__ import annotations

import pytest

from finetune_tiny import finetune_tiny_examples, finetune_tiny_llama_config, finetune_tiny_tokenizer


def test_pack_rows_fills_and_covers():
    from llmfti.training.packing import pack_rows

    lengths = [5, 9, 3, 7, 2, 8, 1, 10, 4, 6]
    rows = pack_rows(lengths, 12, seed=1)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in r) <= 12 for r in rows)
    assert len(rows) == 5  # 55 tokens into rows of 12: best-fit-decreasing reaches the optimum here


def test_collate_restarts_positions_and_shifts_targets_per_example():
    from llmfti.training.packing import BatchPlan, collate

    ex = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4, 5], "labels": [4, 5]}]
    b = collate(ex, BatchPlan(rows=[[0, 1]], tokens=5, loss_tokens=3), pad_id=0, pad_multiple=8)
    assert b["input_ids"].tolist() == [[1, 2, 3, 4, 5, 0, 0, 0]]
    assert b["position_ids"].tolist() == [[0, 1, 2, 0, 1, 2, 3, 4]]
    # last token of example 0 must not predict example 1's first token (4); filler predicts nothing
    assert b["targets"].tolist() == [[2, 3, -100, 5, -100, -100, -100, -100]]


def test_plan_batches_padded_mode_groups_by_length():
    from llmfti.training.packing import plan_batches

    ex = finetune_tiny_examples(40, seed=3)
    plans = plan_batches(ex, max_seq_len=64, batch_tokens=128, packing=False, seed=0)
    assert sorted(r[0] for p in plans for r in p.rows) == list(range(40))
    for p in plans:
        longest = max(len(ex[r[0]]["input_ids"]) for r in p.rows)
        assert longest * len(p.rows) <= 128


def _tiny_lora_loss_model(fused=True):
    import torch
    from transformers import LlamaForCausalLM

    from llmfti.config.finetune import LoraSettings
    from llmfti.training.model_setup import add_lora, build_loss_model

    torch.manual_seed(0)
    # float64: equality up to rounding is then a sharp proof (leakage shows up as ~1e-1 differences)
    model = LlamaForCausalLM(finetune_tiny_llama_config(len(finetune_tiny_tokenizer()))).double().eval()
    model.config.use_cache = False
    pm = add_lora(model, LoraSettings(r=4, alpha=8), seed=0)
    with torch.no_grad():  # a non-zero adapter, so LoRA layers take part in the comparison
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
    return model, pm, build_loss_model(pm, fused=fused, chunk=7)


@pytest.mark.parametrize("fused", [True, False])
def test_packed_loss_equals_per_example_loss(fused):
    import torch

    from llmfti.training.packing import BatchPlan, collate, pack_rows

    ex = finetune_tiny_examples(12, seed=5)
    _, pm, lm = _tiny_lora_loss_model(fused)
    lengths = [len(e["input_ids"]) for e in ex]
    rows = pack_rows(lengths, 64, seed=0)
    assert any(len(r) > 1 for r in rows)  # the test is meaningless without real packing
    packed_sum, packed_n = 0.0, 0
    lm.zero_grad()
    for r in rows:
        s, n = lm(**collate(ex, BatchPlan(rows=[r], tokens=0, loss_tokens=0), pad_id=0))
        s.backward()
        packed_sum, packed_n = packed_sum + float(s.detach()), packed_n + n
    packed_grads = {k: p.grad.clone() for k, p in pm.named_parameters() if p.requires_grad}

    single_sum, single_n = 0.0, 0
    lm.zero_grad()
    for i in range(len(ex)):
        s, n = lm(**collate(ex, BatchPlan(rows=[[i]], tokens=0, loss_tokens=0), pad_id=0, pad_multiple=1))
        s.backward()
        single_sum, single_n = single_sum + float(s.detach()), single_n + n
    assert packed_n == single_n == sum(sum(1 for x in e["labels"][1:] if x != -100) for e in ex)
    assert packed_sum == pytest.approx(single_sum, rel=1e-9)
    for k, p in pm.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(packed_grads[k], p.grad, rtol=1e-7, atol=1e-10)


def test_packing_leaks_with_a_kv_cache_so_we_never_use_one():
    """Negative control: the same packed row through HF's forward WITH its default cache attends across
    examples (transformers skips packed-sequence masking when a cache exists). Our loss module passes
    use_cache=False; this test pins the transformers behaviour that makes that necessary."""
    import torch

    from llmfti.training.packing import BatchPlan, collate

    ex = finetune_tiny_examples(2, seed=7)
    model, _, _ = _tiny_lora_loss_model()
    b = collate(ex, BatchPlan(rows=[[0, 1]], tokens=0, loss_tokens=0), pad_id=0, pad_multiple=1)
    n0 = len(ex[0]["input_ids"])
    alone = model(input_ids=torch.tensor([ex[1]["input_ids"]]), use_cache=False).logits
    with torch.no_grad():
        safe = model(input_ids=b["input_ids"], position_ids=b["position_ids"], use_cache=False).logits[:, n0:]
        leaky = model(input_ids=b["input_ids"], position_ids=b["position_ids"], use_cache=True).logits[:, n0:]
    torch.testing.assert_close(safe, alone, rtol=1e-9, atol=1e-9)
    assert (leaky - alone).abs().max() > 1e-3
