"""Instruction pairs from documents (model-independent transformations used by records synthesis).

`structure_pairs(heading_path, text)` is the offline, deterministic method: it reads a chunk's own
structure and writes (question, answer) pairs whose answers are sentences of the chunk, cited as [1]
(the first context the pair is trained with). What it produces:

- a section's opening: "The "with" statement" -> "What does the "with" statement do?", answered by the
  first sentences of the section's first prose paragraph;
- definitions: "Tuples are immutable sequences ..." -> "What are tuples?";
- API entries: `object.__iter__(self)` followed by its description -> "What does object.__iter__() do?".

What it cannot produce: questions whose answer is not stated in one place (multi-hop, comparisons),
how-to questions answered by code, or anything phrased differently from the text. The teacher method
(`teacher_messages` / `parse_teacher_pairs`, any OpenAI-compatible endpoint) writes those.

Registration works like chunkers: `@SYNTHESIZERS.register("name")` on a function of (heading_path,
text, max_pairs) -> [(question, answer)].
"""

from __future__ import annotations

import json
import re
from typing import Callable

from llmfti.plugins import Registry

PairFn = Callable[..., list[tuple[str, str]]]  # (heading_path, text, max_pairs, *, section_start) -> pairs
SYNTHESIZERS: Registry = Registry("synthesis method", builtins="llmfti.transforms.synthesis")
register_synthesizer = SYNTHESIZERS.register

MAX_ANSWER_WORDS = 60
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"(*])")
_API_ENTRY = re.compile(r"^(?P<name>[A-Za-z_][\w.]*)\((?P<args>[^)]*)\)\s*$")
_DEFINITION = re.compile(
    r"^(?:(?:The|A|An)\s+)?(?P<term>[\"“]?[A-Za-z_][\w .\-\"”]{1,60}?)\s+(?P<verb>is|are)\s+(?:a|an|the|used|called|immutable|mutable)\b"
)


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _is_prose(paragraph: str) -> bool:
    """Running text: no grammar productions, tables, prompts or code indentation."""
    lines = [line for line in paragraph.splitlines() if line.strip()]
    if not lines or lines[0].startswith((" ", "\t")):
        return False
    bad = ("::=", "+---", "|", ">>>", "...", "(")
    return not any(line.lstrip().startswith(bad) or "::=" in line for line in lines) and len(_clean(paragraph).split()) >= 6


def _first_sentences(paragraph: str, max_words: int = MAX_ANSWER_WORDS) -> str:
    """The first one or two sentences, within `max_words` words."""
    sentences = _SENTENCE_END.split(_clean(paragraph))
    out = sentences[0]
    if len(sentences) > 1 and len((out + " " + sentences[1]).split()) <= max_words:
        out += " " + sentences[1]
    words = out.split()
    if len(words) > max_words:
        out = " ".join(words[:max_words]).rstrip(",;:") + " ..."
    return out


def _answer(text: str) -> str:
    return text.rstrip() + " [1]"


def _heading_question(heading_path: str) -> str | None:
    parts = [p.strip() for p in heading_path.split(">") if p.strip()]
    if not parts:
        return None
    head = parts[-1].split(" — ")[0].strip()
    parent = parts[-2].split(" — ")[0].strip() if len(parts) > 1 else ""
    statement = re.fullmatch(r"The (.+) statement", head)
    if statement:
        return f"What does the {statement.group(1)} statement do?"
    clause = re.fullmatch(r"(.+) clause", head)
    if clause and parent.startswith("The "):
        return f"What is the {clause.group(1)} clause of {parent[0].lower() + parent[1:]} for?"
    if len(head.split()) > 8 or not re.search(r"[A-Za-z]", head):
        return None
    article = "are" if head.lower().endswith("s") and not head.lower().endswith("ss") else "is"
    return f"What {article} {head[0].lower() + head[1:] if head[:1].isupper() and not head[1:2].isupper() else head}?"


@register_synthesizer("structure")
def structure_pairs(heading_path: str, text: str, max_pairs: int = 2, *, section_start: bool = True) -> list[tuple[str, str]]:
    """(question, answer) pairs read off a chunk's structure; deterministic, no model. The heading
    question is asked only of a section's first chunk (`section_start`): later chunks do not open it."""
    pairs: list[tuple[str, str]] = []
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    prose = [p for p in paragraphs if _is_prose(p)]
    question = _heading_question(heading_path) if section_start else None
    if question and prose:
        pairs.append((question, _answer(_first_sentences(prose[0]))))
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        entry = _API_ENTRY.match(line.strip()) if not line.startswith(" ") else None
        description = [ln for ln in lines[i + 1 : i + 8] if ln.strip()]
        if entry and description and description[0].startswith((" ", "\t")):
            body = []
            for ln in lines[i + 1 :]:
                if ln.strip() and not ln.startswith((" ", "\t")):
                    break
                body.append(ln)
            para = re.split(r"\n\s*\n", "\n".join(body).strip())[0]
            if len(_clean(para).split()) >= 6:
                pairs.append((f"What does {entry.group('name')}() do?", _answer(_first_sentences(para))))
    for paragraph in prose:
        for sentence in _SENTENCE_END.split(_clean(paragraph))[:3]:
            match = _DEFINITION.match(sentence)
            if match and len(sentence.split()) <= MAX_ANSWER_WORDS:
                term = match.group("term").strip()
                pairs.append((f"What {match.group('verb')} {term[0].lower() + term[1:] if term[1:2].islower() else term}?", _answer(sentence)))
    seen, out = set(), []
    for q, a in pairs:
        key = q.lower()
        if key not in seen:
            seen.add(key)
            out.append((q, a))
    return out[:max_pairs]


# -- the teacher method: prompts for, and replies from, any OpenAI-compatible model ----------------

TEACHER_SYSTEM = (
    "You write question-answer pairs for training a retrieval-augmented assistant. Use only facts stated in the "
    "passage. Questions must be answerable from the passage alone; answers are one or two sentences and end with [1]."
)


def teacher_messages(heading_path: str, text: str, n: int) -> list[dict]:
    where = f"Section: {heading_path}\n\n" if heading_path else ""
    user = (f"{where}Passage:\n{text}\n\nWrite {n} question-answer pairs as a JSON list of objects with the keys "
            '"question" and "answer". Reply with the JSON list only.')
    return [{"role": "system", "content": TEACHER_SYSTEM}, {"role": "user", "content": user}]


def parse_teacher_pairs(reply: str, max_pairs: int) -> list[tuple[str, str]]:
    """Pairs from a teacher's reply (the first JSON list in it); ValueError when there is none."""
    start, end = reply.find("["), reply.rfind("]")
    if start < 0 or end <= start:
        raise ValueError("the reply holds no JSON list")
    try:
        items = json.loads(reply[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"the reply's JSON list does not parse: {exc.msg}") from None
    pairs = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("question"), str) and isinstance(item.get("answer"), str):
            q, a = _clean(item["question"]), _clean(item["answer"])
            if q and a:
                pairs.append((q, a if a.endswith("]") else _answer(a)))
    if not pairs:
        raise ValueError("the reply's JSON list holds no {question, answer} objects")
    return pairs[:max_pairs]


# -- the detail method: questions a user asks about one sentence of a chunk -------------------------

# Questions about a detail are answered by that sentence, as a person answers them: "Yes, ..."/"No, ..."
# for a yes/no question, the sentence itself otherwise. Subjects longer than this are not turned around.
MAX_SUBJECT_WORDS = 9
_AUX = ("is", "are", "can", "must", "may", "will", "should", "does", "do", "was", "were", "has", "have")
_YES_NO = re.compile(r"^(?P<subject>[A-Za-z_\"“`'(][^,;:]*?)\s+(?P<aux>" + "|".join(_AUX) + r")\s+(?P<neg>not\s+|never\s+)?(?P<rest>[^;:]+?)[.!]?$")
_CONDITION = re.compile(r"^(?P<word>If|When|Unless)\s+(?P<cond>[^,]{6,}?),\s*(?P<rest>.+)$")
# Verbs a subject "does": their base form is the 3rd person without its ending. Kept general (not a
# corpus's vocabulary): what documentation says things do.
_ACTION_VERBS = (
    "returns", "raises", "creates", "calls", "contains", "defines", "evaluates", "executes", "uses", "requires", "accepts",
    "takes", "produces", "computes", "finds", "checks", "converts", "stores", "removes", "adds", "ignores", "allows",
    "prevents", "determines", "specifies", "provides", "supports", "generates", "yields", "means", "causes", "controls",
    "matches", "replaces", "binds", "refers", "applies", "starts", "ends", "stops", "includes", "excludes", "emits",
)
_PRONOUN_SUBJECTS = ("this", "these", "that", "those", "they", "he", "she", "such", "both", "each", "which", "we", "you", "i")
# Sentence adverbs and discourse words: "Finally, X is ..." or "Note that X is ..." have no subject at the start.
_NOT_A_SUBJECT = ("note", "notice", "finally", "otherwise", "however", "also", "because", "thus", "hence", "then", "so", "but",
                  "and", "or", "for", "in", "on", "at", "by", "with", "as", "since", "although", "while", "here", "there", "now")
MAX_YES_NO_WORDS = 16  # a yes/no question longer than this restates the whole sentence


def _base_form(verb: str) -> str:
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if verb.endswith(("sses", "shes", "ches", "xes", "zes")):
        return verb[:-2]
    return verb[:-1]


def _lower_first(text: str) -> str:
    return text[0].lower() + text[1:] if text[:1].isupper() and not text[1:2].isupper() else text


def _subject_ok(subject: str) -> bool:
    words = subject.split()
    if not 0 < len(words) <= MAX_SUBJECT_WORDS or "," in subject or subject.startswith(("*", "-", "•")):
        return False
    first = words[0].lower().strip("\"“`'(")
    # One bare word is a subject only when it is a name (code or quoted), not "Common uses ...".
    named = subject[:1] in "\"“`'" or "_" in subject or "." in subject.strip(".")
    return first not in _PRONOUN_SUBJECTS + _NOT_A_SUBJECT and (len(words) >= 2 or named)


def detail_question(sentence: str) -> tuple[str, str] | None:
    """(question, answer) about one sentence, or None when no rule fits it. Rules, in order:
    "If/When A, B." -> "What happens if/when A?"; "X returns/raises/... Y" -> "What does X return/...?";
    "X is/can/must [not] Y." -> "Is/Can/Must X Y?" answered "Yes, ..." or "No, ..."."""
    s = _clean(sentence)
    if not (6 <= len(s.split()) <= MAX_ANSWER_WORDS) or s.endswith("?") or "::=" in s or s.count("(") != s.count(")"):
        return None
    cond = _CONDITION.match(s)
    if cond and len(cond.group("cond").split()) >= 2:
        return f"What happens {cond.group('word').lower()} {cond.group('cond')}?", s
    words = s.rstrip(".!").split()
    for i, w in enumerate(words[1 : MAX_SUBJECT_WORDS + 1], 1):
        if w in _AUX:  # "X is not deleted when the loop ends": the verb came first, a yes/no question
            break
        if w in _ACTION_VERBS:
            subject = " ".join(words[:i])
            if _subject_ok(subject) and not words[i - 1].lower() in ("it", "which", "that"):
                return f"What does {_lower_first(subject)} {_base_form(w)}?", s
            break
    yn = _YES_NO.match(s)
    if yn and _subject_ok(yn.group("subject")) and 2 <= len(yn.group("rest").split()) and len(s.split()) <= MAX_YES_NO_WORDS:
        aux, rest = yn.group("aux"), yn.group("rest").rstrip(".")
        prefix = "No" if yn.group("neg") else "Yes"
        return f"{aux.capitalize()} {_lower_first(yn.group('subject'))} {rest}?", f"{prefix}, {_lower_first(s)}"
    return None


@register_synthesizer("detail")
def detail_pairs(heading_path: str, text: str, max_pairs: int = 2, *, section_start: bool = True) -> list[tuple[str, str]]:
    """Questions about details of a chunk: each answered by ONE sentence of its running text (not only
    the first), so the model learns to find the sentence that answers, say it, cite it and stop. Adds
    the structure method's heading question when it fits in `max_pairs`. Deterministic, no model."""
    pairs: list[tuple[str, str]] = []
    for paragraph in (p for p in re.split(r"\n\s*\n", text) if _is_prose(p)):
        for sentence in _SENTENCE_END.split(_clean(paragraph)):
            qa = detail_question(sentence)
            if qa:
                pairs.append((qa[0], _answer(qa[1])))
    # Spread over the chunk: every k-th detail question rather than the first few.
    if len(pairs) > max_pairs:
        step = len(pairs) / max_pairs
        pairs = [pairs[int(i * step)] for i in range(max_pairs)]
    structure = structure_pairs(heading_path, text, 1, section_start=section_start)
    seen = {q.lower() for q, _ in pairs}
    out = pairs + [(q, a) for q, a in structure if q.lower() not in seen]
    return out[:max_pairs] if len(pairs) >= max_pairs else out[: max_pairs]
