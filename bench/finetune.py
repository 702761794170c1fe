"""Benchmark: useful (loss-bearing) tokens/s, MFU and peak memory of llmfti's trainer vs a naive peft loop.

Both run in ONE process on the same random-init model shape, LoRA config (r=16, alpha=32, all-linear)
and synthetic SFT set (lengths lognormal around 350 tokens, clipped to 64-2048; the first 20-60% of
each example is prompt, label -100; answers end with EOS):

- naive: a fixed number of examples per step, padded to the longest in the batch with an attention
  mask, HF's own loss from full logits (what HF Trainer does by default).
- llmfti: `llmfti.training.Trainer` (packing into rows of max_seq_len without cross-example
  attention, fused linear + cross-entropy on answer tokens only, optional torch.compile).

    python bench/finetune.py                          # GPU: SmolLM2-135M and Llama-3.2-1B shapes
    python bench/finetune.py --device cpu --quick     # tiny shapes, proves it runs end to end
    python bench/finetune.py --compile --batch-rows 32

One JSON line per measurement, then a summary with ratios. MFU uses model FLOPs of LoRA training on
a frozen base: per real token 4*N (forward 2N + input-gradient 2N; frozen weights get no weight
gradient) + 6*N_lora, the output head only where it is computed, plus causal attention
(3 passes * 2 matmuls * 2 FLOPs * d_model * len/2 per token and layer). `mfu_6n` is the cruder
6*N*tokens figure many reports use, printed for comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {
    "smollm2-135m": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True),
    "llama3.2-1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                        intermediate_size=8192, vocab_size=128256, tie_word_embeddings=True),
    "tiny-a": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                   intermediate_size=128, vocab_size=512, tie_word_embeddings=True),
    "tiny-b": dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                   intermediate_size=192, vocab_size=1024, tie_word_embeddings=True),
}
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def make_examples(n, vocab, mean, lo, hi, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        L = min(hi, max(lo, int(rng.lognormvariate(math.log(mean), 0.8))))
        p = max(1, int(L * rng.uniform(0.2, 0.6)))
        ids = [rng.randrange(3, vocab) for _ in range(L - 1)] + [2]  # 2 = EOS ends every answer
        out.append({"input_ids": ids, "labels": [-100] * p + ids[p:]})
    return out


def build(shape, device, dtype, attn, seed=0):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from llmfti.config.finetune import LoraSettings
    from llmfti.training.model_setup import add_lora

    cfg = LlamaConfig(max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=0, **SHAPES[shape])
    torch.manual_seed(seed)
    with torch.device(device):
        m = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=attn)
    m.config.use_cache = False
    for p in m.parameters():
        p.requires_grad_(False)
    return add_lora(m, LoraSettings(r=16, alpha=32, target_modules="all-linear"), seed=seed), cfg


def model_flops(cfg, pm, lengths_tokens, loss_tokens, head_tokens):
    """(exact LoRA FLOPs, 6N FLOPs) for the given processed work."""
    H, V, nl = cfg.hidden_size, cfg.vocab_size, cfg.num_hidden_layers
    n_lora = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in pm.parameters())
    n_body = n_all - n_lora - V * H  # linear weights of the decoder (tied embedding/head counted apart)
    tokens = sum(lengths_tokens)
    attn = sum(3 * 2 * 2 * H * (L * L / 2) for L in lengths_tokens) * nl
    exact = tokens * (4 * n_body + 6 * n_lora) + head_tokens * 4 * V * H + attn
    return exact, 6 * (n_all - n_lora) * tokens


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


def run_naive(shape, examples, bs, steps, warm, device, dtype):
    import torch

    pm, cfg = build(shape, device, dtype, "sdpa")
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-4, fused=device.type == "cuda")
    reset_mem(device)
    useful = 0
    lengths: list[int] = []
    it = iter(examples * 100)
    for i in range(warm + steps):
        if i == warm:
            sync(device)
            t0, useful, lengths = time.perf_counter(), 0, []
        batch = [next(it) for _ in range(bs)]
        L = max(len(e["input_ids"]) for e in batch)
        ids = torch.zeros((bs, L), dtype=torch.long)
        am = torch.zeros((bs, L), dtype=torch.long)
        lab = torch.full((bs, L), -100, dtype=torch.long)
        for r, e in enumerate(batch):
            n = len(e["input_ids"])
            ids[r, :n], am[r, :n], lab[r, :n] = torch.tensor(e["input_ids"]), 1, torch.tensor(e["labels"])
        out = pm(input_ids=ids.to(device), attention_mask=am.to(device), labels=lab.to(device))
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        useful += sum(sum(1 for x in e["labels"][1:] if x != -100) for e in batch)
        lengths += [len(e["input_ids"]) for e in batch]
    sync(device)
    dt = time.perf_counter() - t0
    exact, six = model_flops(cfg, pm, lengths, useful, sum(lengths))
    res = dict(method="naive_padded", shape=shape, examples_per_step=bs, useful_tok_s=useful / dt,
               flops_s=exact / dt, flops6n_s=six / dt, peak_gb=peak_gb(device), final_loss=float(out.loss.detach()))
    del pm, opt, out
    reset_mem(device)
    return res


def run_llmfti(shape, examples, rows, max_seq_len, steps, warm, device, dtype, compile_, attn):
    from llmfti.config import FinetuneConfig
    from llmfti.training.trainer import Trainer

    pm, cfg = build(shape, device, dtype, attn)
    fc = FinetuneConfig(
        name="bench", base_model="random", data_path="unused.jsonl", device=str(device), compile=compile_,
        train={"max_seq_len": max_seq_len, "batch_tokens": rows * max_seq_len, "max_steps": warm + steps,
               "lr": 1e-4, "schedule": "constant", "max_grad_norm": None},
    )
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(fc, pm, examples, [], pad_id=0, device=device, run_dir=tmp, dataset_ref="bench", progress=False)
        reset_mem(device)
        useful, lengths = 0, []
        for s in range(warm + steps):
            if s == warm:
                sync(device)
                t0, useful, lengths = time.perf_counter(), 0, []
            rec = tr.train_step(s)
            useful += rec["loss_tokens"]
            lengths += [len(examples[i]["input_ids"]) for p in tr._step_plans(s) for r in p.rows for i in r]
        sync(device)
        dt = time.perf_counter() - t0
    exact, six = model_flops(cfg, pm, lengths, useful, useful)
    res = dict(method="llmfti", shape=shape, rows_per_step=rows, max_seq_len=max_seq_len, compile=compile_,
               attn=attn, useful_tok_s=useful / dt, flops_s=exact / dt, flops6n_s=six / dt,
               peak_gb=peak_gb(device), final_loss=rec["loss"])
    del tr, pm
    reset_mem(device)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny shapes and lengths (CPU smoke run)")
    ap.add_argument("--shapes", nargs="*", help="subset of " + ", ".join(SHAPES))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--batch-rows", type=int, default=None, help="llmfti rows of max_seq_len per step (default: same token budget as naive)")
    ap.add_argument("--compile", action="store_true", help="torch.compile llmfti's decoder layers")
    ap.add_argument("--attn", default="auto", help="llmfti attention: auto, sdpa, flash_attention_2, flex_attention")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 dense TFLOP/s of the card (MFU)")
    args = ap.parse_args(argv)

    import torch

    from llmfti.training.model_setup import resolve_attn

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if args.quick:
        plan = {"tiny-a": 8, "tiny-b": 4}
        mean, lo, hi, max_seq_len, n_ex = 48, 8, 256, 256, 600
        args.steps, args.warm = min(args.steps, 4), min(args.warm, 1)
    else:
        plan = {"smollm2-135m": 16, "llama3.2-1b": 8}  # naive examples per step (as in the shared baselines)
        mean, lo, hi, max_seq_len, n_ex = 350, 64, 2048, 2048, 4000
    if args.shapes:
        plan = {k: v for k, v in plan.items() if k in args.shapes} or {k: 8 for k in args.shapes}
    attn = resolve_attn(args.attn, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    examples = make_examples(n_ex, min(SHAPES[s]["vocab_size"] for s in plan), mean, lo, hi)
    print(json.dumps(dict(device=name, torch=torch.__version__, mean_len=sum(len(e["input_ids"]) for e in examples) / len(examples),
                          steps=args.steps, warm=args.warm)), flush=True)
    summary = []
    for shape, bs in plan.items():
        rows = args.batch_rows or bs
        naive = run_naive(shape, examples, bs, args.steps, args.warm, device, dtype)
        ours = run_llmfti(shape, examples, rows, max_seq_len, args.steps, args.warm, device, dtype, args.compile, attn)
        for r in (naive, ours):
            if peak:
                r["mfu"] = r["flops_s"] / (peak * 1e12)
                r["mfu_6n"] = r["flops6n_s"] / (peak * 1e12)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
        s = dict(shape=shape, naive_useful_tok_s=round(naive["useful_tok_s"]), llmfti_useful_tok_s=round(ours["useful_tok_s"]),
                 speedup=round(ours["useful_tok_s"] / naive["useful_tok_s"], 2),
                 llmfti_mfu=round(ours["mfu"], 3) if peak else None,
                 mem_ratio=round(ours["peak_gb"] / naive["peak_gb"], 2) if naive["peak_gb"] else None)
        summary.append(s)
    print(json.dumps({"summary": summary}), flush=True)
    for s in summary:
        print(f"{s['shape']:>14}: naive {s['naive_useful_tok_s']:>9,} useful tok/s | llmfti {s['llmfti_useful_tok_s']:>9,} "
              f"| x{s['speedup']:.2f} | MFU {s['llmfti_mfu']} | peak mem ratio {s['mem_ratio']}", file=sys.stderr)


if __name__ == "__main__":
    main()
