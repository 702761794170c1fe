"""The shared set-up of bench/finetune.py: model shapes, the synthetic SFT set, the step plan every
side follows, and the random-init model with its seeded LoRA adapter. Every side of the benchmark is
built from these, so they see the same model, data and steps (like with like)."""

from __future__ import annotations

import math
import random

SHAPES = {
    "smollm2-135m": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True),
    "llama3.2-1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                        intermediate_size=8192, vocab_size=128256, tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=512, tie_word_embeddings=True),
}


# ---- data and shared step plan ---------------------------------------------------------------------------
def make_examples(n, vocab, mean, lo, hi, seed=0):
    """Pre-tokenized SFT examples: uniform prompt tokens (label -100), answers from a Zipf-like
    distribution over 64 ids (learnable: the loss falls from ~log V), EOS (id 2) last."""
    rng = random.Random(seed)
    k = min(64, vocab // 4)
    answer_ids, cum = list(range(3, 3 + k)), []
    for i in range(k):
        cum.append((cum[-1] if cum else 0.0) + 1.0 / (i + 1))
    out = []
    for _ in range(n):
        L = min(hi, max(lo, int(rng.lognormvariate(math.log(mean), 0.8))))
        p = max(1, int(L * rng.uniform(0.2, 0.6)))
        ids = [rng.randrange(3, vocab) for _ in range(p)] + rng.choices(answer_ids, cum_weights=cum, k=L - p - 1) + [2]
        out.append({"input_ids": ids, "labels": [-100] * p + ids[p:]})
    return out


def plan_steps(train, rows, accum, max_seq_len, n_steps, seed=0):
    """The micro-batches of each optimizer step, exactly as llmfti's Trainer plans epoch 0 (same seed)."""
    from llmfti.training.packing import plan_batches

    plans = plan_batches(train, max_seq_len=max_seq_len, batch_tokens=rows * max_seq_len, packing=True, seed=seed)
    need = n_steps * accum
    if len(plans) <= need:
        raise SystemExit(f"only {len(plans)} micro-batches of {rows} rows for {need}: raise n_examples")
    steps = [plans[s * accum:(s + 1) * accum] for s in range(n_steps)]
    assert all(len(p.rows) == rows for st in steps for p in st), "a partial micro-batch inside the measured steps"
    return steps


# ---- model --------------------------------------------------------------------------------------------------
def build(shape, device, dtype, attn, seed=0):
    """Random-init Llama of `shape` with frozen weights and a seeded LoRA adapter (identical for every side)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from llmfti.config.finetune import LoraSettings
    from llmfti.training.model_setup import add_lora

    cfg = LlamaConfig(max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=0, **SHAPES[shape])
    torch.manual_seed(seed)
    with torch.device(device):
        m = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=attn)
    m.config.use_cache = False  # a KV cache silently disables packed-sequence masking (llmfti/training/packing.py)
    for p in m.parameters():
        p.requires_grad_(False)
    return add_lora(m, LoraSettings(r=16, alpha=32, target_modules="all-linear"), seed=seed), cfg


def model_flops(cfg, pm, lengths, loss_tokens):
    """(exact LoRA-training FLOPs, 6N FLOPs) of the given work; the same numerator for every side."""
    H, V, nl = cfg.hidden_size, cfg.vocab_size, cfg.num_hidden_layers
    n_lora = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in pm.parameters())
    n_body = n_all - n_lora - V * H  # decoder linear weights (the tied embedding/head counted apart)
    tokens = sum(lengths)
    attn = sum(3 * 2 * 2 * H * (L * L / 2) for L in lengths) * nl
    return tokens * (4 * n_body + 6 * n_lora) + loss_tokens * 4 * V * H + attn, 6 * (n_all - n_lora) * tokens


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_mem(device):
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device):
    import torch

    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def eval_loss(pm, evals, device):
    """Mean answer-token loss of the model on held-out examples, one plain HF forward each: the same
    measurement for every side."""
    import torch

    pm.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for e in evals:
            ids = torch.tensor([e["input_ids"]], device=device)
            lab = torch.tensor([e["labels"]], device=device)
            k = sum(1 for x in e["labels"][1:] if x != -100)
            total += float(pm(input_ids=ids, labels=lab, use_cache=False).loss) * k
            n += k
    pm.train()
    return total / n
