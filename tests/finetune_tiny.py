"""Tiny fine-tuning fixtures built in code (no hub): a character tokenizer, a 2-layer random Llama,
and a synthetic Q&A set whose answers end with EOS. The model config comes from
llmfti.testing.tiny_models (one tiny Llama for the whole suite); the character tokenizer stays here
because the reverse-a-word task needs one token per character."""

from __future__ import annotations

import random
from pathlib import Path

CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789 :?\n")
SPECIAL = ["<pad>", "<s>", "</s>"]


def finetune_tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def finetune_tiny_llama_config(vocab_size: int, **kw):
    from llmfti.testing.tiny_models import tiny_llama_config

    base = dict(max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=True,
                initializer_range=0.2)  # learns in a few steps (see tiny_llama_config)
    base.update(kw)
    cfg = tiny_llama_config(vocab_size, **base)
    cfg._attn_implementation = "sdpa"
    return cfg


def finetune_tiny_base(folder: Path, seed: int = 0) -> Path:
    """Save a random tiny Llama + tokenizer as a normal model folder; returns it."""
    import torch
    from transformers import LlamaForCausalLM

    tok = finetune_tiny_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(finetune_tiny_llama_config(len(tok)))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def finetune_tiny_examples(n: int = 24, seed: int = 0, eos: bool = True, min_len: int = 3, max_len: int = 12) -> list[dict]:
    """'q: <word>?\\na:' -> '<word reversed></s>'; labels -100 on the prompt. Lengths vary (packing matters)."""
    tok = finetune_tiny_tokenizer()
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        word = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(min_len, max_len)))
        p = [tok.bos_token_id] + tok(f"q: {word}?\na:", add_special_tokens=False)["input_ids"]
        a = tok(word[::-1], add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if eos else [])
        out.append({"input_ids": p + a, "labels": [-100] * len(p) + a})
    return out


def finetune_write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
