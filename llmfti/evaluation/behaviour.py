"""What a model learned to do, read off its answers (no reference needed): how long they are, how
often they repeat themselves, whether they cite the contexts as [n] and whether they say the contexts
do not hold the answer. Shown in the eval report and the fine-tune benchmark beside the metrics, so
a fine-tune that "improves" ROUGE by answering in three words, or that learned to loop, is seen.

    answer_behaviour(["Yes, ... [1]", "It is ... It is ... It is ..."])
    # {"answers": 2, "mean_words": 9.5, "repetition_rate": 0.5, "cited_share": 0.5, "refusal_share": 0.0}
"""

from __future__ import annotations

import re

_CITATION = re.compile(r"\[(\d+)\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_REFUSAL = re.compile(r"\b(contexts? (do|does) not|not (stated|given|mentioned|found) in the context|cannot be answered from)", re.I)
REPEAT_NGRAM = 8  # an answer "repeats" when any 8-word sequence occurs twice in it, or a sentence does


def repeats(answer: str, n: int = REPEAT_NGRAM) -> bool:
    """True when the answer says the same thing twice: a repeated sentence or a repeated n-gram of words."""
    sentences = [s.strip().lower() for s in _SENTENCE.split(answer) if len(s.split()) >= 3]
    if len(sentences) != len(set(sentences)):
        return True
    words = re.findall(r"\w+", answer.lower())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def cited(answer: str) -> list[int]:
    """The context numbers an answer cites as [n]."""
    return [int(m) for m in _CITATION.findall(answer)]


def is_refusal(answer: str) -> bool:
    """Says the contexts do not hold the answer (the rag-default template asks for that)."""
    return bool(_REFUSAL.search(answer))


def answer_behaviour(answers: list[str]) -> dict:
    """Aggregate behaviour of a list of answers (empty answers count as zero words)."""
    n = len(answers)
    if not n:
        return {"answers": 0, "mean_words": None, "repetition_rate": None, "cited_share": None, "refusal_share": None}
    return {
        "answers": n,
        "mean_words": round(sum(len(a.split()) for a in answers) / n, 1),
        "repetition_rate": round(sum(repeats(a) for a in answers) / n, 3),
        "cited_share": round(sum(bool(cited(a)) for a in answers) / n, 3),
        "refusal_share": round(sum(is_refusal(a) for a in answers) / n, 3),
    }
