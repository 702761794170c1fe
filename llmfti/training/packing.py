"""Batching of encoded examples: packing into rows (default) or length-grouped padded rows.

Packing puts several examples in one row of at most `max_seq_len` tokens, each with its own
`position_ids` restarting at 0. transformers 5.x derives a block-diagonal causal mask from such
position_ids (sdpa, eager, flex) or uses varlen kernels (flash_attention_2) — but ONLY when no
attention_mask and no KV cache are passed: the model must be called with `use_cache=False`, else a
DynamicCache is created, packing detection is skipped and examples attend to each other silently.
`tests/test_finetune_packing.py` proves the packed loss equals the per-example loss.

Targets are shifted here, per example (`targets[t] = labels[t+1]`, -100 on each example's last
token), so the loss needs no shift and never predicts the next example's first token.
Filler after the last example continues that example's positions: causal attention means no real
token ever sees it, and the mask keeps one segment fewer.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

from llmfti.training.data import IGNORE


def shift_targets(labels: list[int]) -> list[int]:
    """Next-token targets of one example: position t predicts labels[t+1]; the last position predicts nothing."""
    return list(labels[1:]) + [IGNORE]


def fit_examples(examples: list[dict], max_seq_len: int, overlong: str = "drop") -> tuple[list[dict], int]:
    """Drop (or truncate) examples longer than max_seq_len; returns (kept, number affected)."""
    kept, affected = [], 0
    for ex in examples:
        if len(ex["input_ids"]) <= max_seq_len:
            kept.append(ex)
            continue
        affected += 1
        if overlong == "truncate":
            cut = {"input_ids": ex["input_ids"][:max_seq_len], "labels": ex["labels"][:max_seq_len]}
            if any(x != IGNORE for x in cut["labels"][1:]):
                kept.append(cut)
    return kept, affected


def pack_rows(lengths: list[int], max_seq_len: int, seed: int | None = None) -> list[list[int]]:
    """Best-fit-decreasing bin packing of example indices into rows of capacity max_seq_len.

    Decreasing order + best fit fills rows to ~97-99% on lognormal SFT lengths, which is where the
    throughput over padding comes from. O(n log n) with a sorted list of free capacities.
    """
    order = list(range(len(lengths)))
    if seed is not None:  # shuffled ties: equal-length examples meet different neighbours each epoch
        random.Random(seed).shuffle(order)
    order.sort(key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (remaining capacity, row id)
    for i in order:
        n = lengths[i]
        if n > max_seq_len:
            raise ValueError(f"example of {n} tokens exceeds max_seq_len {max_seq_len} (call fit_examples first)")
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            cap, rid = free.pop(k)
            rows[rid].append(i)
            if cap - n > 0:
                bisect.insort(free, (cap - n, rid))
        else:
            rows.append([i])
            if max_seq_len - n > 0:
                bisect.insort(free, (max_seq_len - n, len(rows) - 1))
    return rows


@dataclass
class BatchPlan:
    """One micro-batch: rows of example indices (one per row when not packing) and its token counts."""

    rows: list[list[int]]
    tokens: int  # real tokens (no filler)
    loss_tokens: int  # tokens that carry a target


def plan_batches(
    examples: list[dict],
    *,
    max_seq_len: int,
    batch_tokens: int,
    packing: bool,
    seed: int,
) -> list[BatchPlan]:
    """Micro-batches for one epoch, in a seeded random order.

    Packing: rows from `pack_rows`, `batch_tokens // max_seq_len` rows per micro-batch.
    No packing: examples sorted by length within shuffled windows (length-grouped batching), as
    many per micro-batch as fit in `batch_tokens` once padded to the longest.
    """
    rng = random.Random(seed)
    lengths = [len(e["input_ids"]) for e in examples]
    loss = [sum(1 for x in e["labels"][1:] if x != IGNORE) for e in examples]
    groups: list[list[list[int]]] = []
    if packing:
        rows = pack_rows(lengths, max_seq_len, seed)
        rng.shuffle(rows)
        per = max(1, batch_tokens // max_seq_len)
        groups = [rows[i : i + per] for i in range(0, len(rows), per)]
    else:
        order = list(range(len(examples)))
        rng.shuffle(order)
        window = 64 * max(1, batch_tokens // max(1, max(lengths)))
        for w in range(0, len(order), window):
            chunk = sorted(order[w : w + window], key=lambda i: lengths[i])
            cur: list[list[int]] = []
            longest = 0
            for i in chunk:
                longest_new = max(longest, lengths[i])
                if cur and longest_new * (len(cur) + 1) > batch_tokens:
                    groups.append(cur)
                    cur, longest_new = [], lengths[i]
                cur.append([i])
                longest = longest_new
            if cur:
                groups.append(cur)
        rng.shuffle(groups)
    return [
        BatchPlan(rows=g, tokens=sum(lengths[i] for r in g for i in r), loss_tokens=sum(loss[i] for r in g for i in r))
        for g in groups
    ]


def collate(examples: list[dict], plan: BatchPlan, *, pad_id: int, pad_multiple: int = 64, device=None) -> dict:
    """Tensors for one micro-batch: input_ids, position_ids and shifted targets, each [rows, L].

    L is the longest row rounded up to `pad_multiple` (fewer distinct shapes for kernels and compile).
    """
    import torch

    seqs = []
    for row in plan.rows:
        ids, pos, tgt = [], [], []
        for i in row:
            ex = examples[i]
            ids += ex["input_ids"]
            pos += range(len(ex["input_ids"]))
            tgt += shift_targets(ex["labels"])
        seqs.append((ids, pos, tgt))
    longest = max(len(s[0]) for s in seqs)
    L = -(-longest // pad_multiple) * pad_multiple
    ids_t = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    pos_t = torch.zeros((len(seqs), L), dtype=torch.long)
    tgt_t = torch.full((len(seqs), L), IGNORE, dtype=torch.long)
    for r, (ids, pos, tgt) in enumerate(seqs):
        n = len(ids)
        ids_t[r, :n] = torch.tensor(ids)
        tgt_t[r, :n] = torch.tensor(tgt)
        start = pos[-1] + 1 if pos else 0
        pos_t[r, :n] = torch.tensor(pos)
        pos_t[r, n:] = torch.arange(start, start + L - n)  # filler continues the last example (see module doc)
    out = {"input_ids": ids_t, "position_ids": pos_t, "targets": tgt_t}
    if device is not None:
        out = {k: v.to(device, non_blocking=True) for k, v in out.items()}
    return out
