"""Evaluation data never leaks into training: what an eval suite cites (its documents, its reference
passages) and asks (its questions), matched against training material.

    guard = LeakGuard([load_suite("python-reference")])
    guard.excludes_document("with.md")            # a document the suite cites
    guard.excludes_passage(chunk_text)            # a chunk holding one of its reference passages
    guard.overlaps(question, texts)               # -> ["question", "passage"] for a training example

Matching is normalised text (case, whitespace, quotes) with rapidfuzz: a question counts as the same
at ratio >= 90, a passage as contained at partial ratio >= 90 (the eval's own context-match rule is
0.8; training uses a stricter bar to keep near-copies out, not to flag paraphrases of common words).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

QUESTION_RATIO = 90.0
PASSAGE_RATIO = 90.0
_MIN_PASSAGE_CHARS = 30  # shorter references ("None") would match everything


def normalize(text: str) -> str:
    text = text.lower().replace("“", '"').replace("”", '"').replace("’", "'")
    return re.sub(r"\s+", " ", re.sub(r"[\"'`*]", "", text)).strip()


@dataclass
class LeakGuard:
    suites: list = field(default_factory=list)  # llmfti.evaluation.suites.Suite

    def __post_init__(self):
        self.documents = {d for s in self.suites for c in s.cases for d in c.source_ids}
        self.questions = [normalize(c.question) for s in self.suites for c in s.cases]
        self.passages = [p for p in (normalize(x) for s in self.suites for c in s.cases for x in c.reference_contexts) if len(p) >= _MIN_PASSAGE_CHARS]

    @property
    def refs(self) -> list[str]:
        return [s.ref for s in self.suites]

    def excludes_document(self, doc_id: str) -> bool:
        return doc_id in self.documents

    def excludes_passage(self, text: str) -> bool:
        """Whether `text` contains one of the suites' reference passages."""
        from rapidfuzz import fuzz

        norm = normalize(text)
        return any(fuzz.partial_ratio(p, norm) >= PASSAGE_RATIO for p in self.passages if len(p) <= len(norm) + 20)

    def same_question(self, question: str) -> bool:
        from rapidfuzz import fuzz, process

        if not self.questions:
            return False
        return process.extractOne(normalize(question), self.questions, scorer=fuzz.ratio, score_cutoff=QUESTION_RATIO) is not None

    def overlaps(self, question: str, texts: list[str]) -> list[str]:
        """What of a training example overlaps the suites: 'question' and/or 'passage' (in any of `texts`)."""
        found = ["question"] if self.same_question(question) else []
        if any(self.excludes_passage(t) for t in texts if t):
            found.append("passage")
        return found
