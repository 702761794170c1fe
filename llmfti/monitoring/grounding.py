"""Is an answer grounded in its contexts? A lexical proxy that needs no judge model.

    grounding_score("Generators yield values lazily.", ["Generators yield values lazily and ..."])  # 1.0
    grounding_summary(scores, threshold=0.5)

The score is the share of the answer's content words (lower-cased words of 3+ letters that are not
stop words) that occur in the contexts. It is a proxy: a paraphrase scores low and a copied but wrong
sentence scores high. It flags the answers that share almost nothing with what was retrieved, which
is what a regression (a model ignoring its contexts, a retrieval returning junk) looks like. The
LLM-judged faithfulness of `llmfti eval` is the precise measure, on a suite.
"""

from __future__ import annotations

import re

import numpy as np

_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
STOP_WORDS = frozenset(
    "the and for are but not you all any can had her was one our out has him his how its may new now old see two way who did get "
    "let say she too use that with have this will your from they know want been good much some time very when come here just like "
    "long make many more only over such take than them well were what which their there these those then into also each other "
    "would could should about after again being both does doing down during few further most must nor off once own same so than "
    "under until while where why whom yes yet because before below between above through".split()
)


def content_words(text: str) -> set[str]:
    return {w for w in (m.group().lower() for m in _WORD.finditer(text or "")) if w not in STOP_WORDS}


def grounding_score(answer: str, contexts: list[str]) -> float | None:
    """Share of the answer's content words found in the contexts; None when the answer has none
    (an empty or one-word answer says nothing either way)."""
    words = content_words(answer)
    if not words:
        return None
    if not contexts:
        return 0.0
    ctx = set().union(*(content_words(c) for c in contexts))
    return len(words & ctx) / len(words)


def grounding_summary(scores: list[float | None], *, threshold: float) -> dict:
    """Share of scored answers below `threshold` ("not grounded"), with the distribution."""
    v = np.array([s for s in scores if s is not None], dtype=float)
    if not len(v):
        return {"answers": 0, "ungrounded_share": None, "mean": None, "threshold": threshold, "skipped": len(scores)}
    return {
        "answers": int(len(v)), "ungrounded_share": float((v < threshold).mean()), "mean": round(float(v.mean()), 4),
        "median": round(float(np.median(v)), 4), "threshold": threshold, "skipped": len(scores) - int(len(v)),
    }
