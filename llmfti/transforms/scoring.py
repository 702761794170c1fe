"""Scores of instruction records: model-independent transformations of the feature pipeline, stored as
columns `score_<name>` of a records feature group and filtered on by `td create --where`.

    scorers = build_scorers([ScorerSpec(name="length"), ScorerSpec(name="near_duplicate")], ScoringEnv())
    columns = score_records(scorers, targets, group)     # {"score_length": [...], "score_near_duplicate": [...]}

Scorers register like chunkers (`llmfti.plugins.Registry`); a factory gets the spec's params and the
resources the pipeline resolved (eval-suite questions, a judge client) and returns an object with
`name`, `version` (bump it whenever the output for the same input changes: the stores record it),
`params` (what it was configured with, recorded) and `score(targets, group) -> [float | None]`:

    @register_scorer("my-scorer")
    def make(params: dict, env: ScoringEnv) -> Scorer: ...

Built-ins, all deterministic except the judge:
- `length` (v1): words in the answer.
- `language` (v1): English-prose heuristics in the spirit of Gopher's quality rules, on question +
  answer: the share of three checks passed (>= 80% of words hold a letter; mean word length 2..12;
  at least one English function word), and 0 when under 90% of the letters are Latin. Gibberish and
  code dumps score <= 1/3, other scripts 0.
- `near_duplicate` (v1): the highest Jaccard similarity (MinHash, 128 permutations, character
  5-grams of the normalised question and answer; datasketch) to a record that came before it
  (ingestion time, then id). Only pairs an LSH index at 0.5 finds are compared: below ~0.5 reads 0.
  Because only earlier records count, `--where "score_near_duplicate < 0.8"` keeps the first of each
  group of near-duplicates, and a record's score never changes when later records arrive.
- `grounding` (v1): the share of the answer's content words found in the record's contexts (the
  lexical rule of `llmfti.monitoring.grounding`, so served answers and training records compare);
  null for a record without contexts.
- `eval_question` (v1, params `suites`): the highest similarity of the question to a question of the
  named eval suites (rapidfuzz ratio on the leak guard's normalisation, / 100). At >= 0.9 the leak
  guard counts it as the same question (`td create --eval-suite` reports it), so these are flagged.
- `judge` (v1, params `base_url`, `model`): an OpenAI-compatible judge's 1-5 rating of the answer
  given the question and contexts, scaled to 0..1; null when the reply holds no rating.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Protocol

from llmfti.errors import ConfigError
from llmfti.plugins import Registry

SCORERS: Registry = Registry("scorer", builtins="llmfti.transforms.scoring")
register_scorer = SCORERS.register
PREFIX = "score_"  # = llmfti.store.schema.SCORE_PREFIX (the store sits above this layer)
EVAL_QUESTION_FLAG = 0.9  # the leak guard's "same question" bar (llmfti.evaluation.leakage.QUESTION_RATIO / 100)


@dataclass
class ScoreInput:
    """One record as scorers see it. `contexts` is None when the record names none (or they are unknown)."""

    key: str  # the record id (doc_id)
    question: str
    answer: str
    contexts: list[str] | None = None
    order: tuple = ()  # (ingested_at, id): "before" for near_duplicate


@dataclass
class ScoringEnv:
    """What the pipeline resolved for the scorers: eval suites by name -> (ref, questions), a judge."""

    suites: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    chat: Callable[[list[dict]], str] | None = None  # a judge: messages -> reply text


class Scorer(Protocol):
    name: str
    version: str
    params: dict
    uses_group: bool  # compares a record with the group's others (the pipeline then reads the group)
    uses_contexts: bool  # reads the record's contexts (the pipeline then resolves them)

    def score(self, targets: list[ScoreInput], group: list[ScoreInput]) -> list[float | None]: ...


def column_name(name: str) -> str:
    """The column of scorer `name`: `score_` + the name in lower case, other characters as '_'."""
    return PREFIX + re.sub(r"[^a-z0-9_]", "_", name.lower())


def build_scorers(specs, env: ScoringEnv | None = None) -> list:
    """Scorers for `specs` (objects or dicts with `name` and `params`); unknown names are a ConfigError."""
    env = env or ScoringEnv()
    out = []
    for spec in specs:
        name, params = (spec["name"], spec.get("params") or {}) if isinstance(spec, dict) else (spec.name, spec.params or {})
        scorer = SCORERS.get(name)(dict(params), env)
        scorer.name = name
        out.append(scorer)
    columns = [column_name(s.name) for s in out]
    if len(set(columns)) != len(columns):
        raise ConfigError(f"two scorers write the same column: {columns}")
    return out


def describe(scorers) -> dict:
    """What the stores record per column: scorer name, version and params."""
    return {column_name(s.name): {"scorer": s.name, "version": str(s.version), "params": s.params, "inputs": getattr(s, "inputs", None)}
            for s in scorers}


def score_records(scorers, targets: list[ScoreInput], group: list[ScoreInput]) -> dict[str, list[float | None]]:
    """{column: one value per target}. `group` is every record of the feature group after the write
    (targets included), for scorers that compare a record with the others."""
    out = {}
    for s in scorers:
        values = list(s.score(targets, group))
        if len(values) != len(targets):
            raise ConfigError(f"scorer {s.name!r} returned {len(values)} scores for {len(targets)} records")
        out[column_name(s.name)] = [None if v is None or v != v else float(v) for v in values]  # NaN -> null
    return out


def scoring_state(runs: list[dict], commit: int | None = None) -> dict[str, dict]:
    """{column: {scorer, version, params, commit}} of a feature group at `commit` (default: latest):
    per score column, what the last committed run that wrote it recorded (`summary.scoring`)."""
    state: dict[str, dict] = {}
    for run in sorted(runs, key=lambda r: r["started_at"]):
        s = run["summary"]
        if not s.get("committed") or (commit is not None and (s.get("data_commit") or 0) > commit):
            continue
        for col, desc in ((s.get("scoring") or {}).get("columns") or {}).items():
            state[col] = {**desc, "commit": s.get("data_commit")}
    return state


# -- text helpers ---------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
# The stop words of llmfti.monitoring.grounding (tests check the two rules agree).
_STOP = frozenset(
    "the and for are but not you all any can had her was one our out has him his how its may new now old see two way who did get "
    "let say she too use that with have this will your from they know want been good much some time very when come here just like "
    "long make many more only over such take than them well were what which their there these those then into also each other "
    "would could should about after again being both does doing down during few further most must nor off once own same so than "
    "under until while where why whom yes yet because before below between above through".split()
)
_FUNCTION_WORDS = frozenset("the a an is are be to of and in that it for on with as was by this what how does do not or can when".split())


def content_words(text: str) -> set[str]:
    return {w for w in (m.group().lower() for m in _WORD.finditer(text or "")) if w not in _STOP}


def normalize(text: str) -> str:
    """The leak guard's normalisation (llmfti.evaluation.leakage.normalize): case, quotes, whitespace."""
    text = text.lower().replace("“", '"').replace("”", '"').replace("’", "'")
    return re.sub(r"\s+", " ", re.sub(r"[\"'`*]", "", text)).strip()


# -- built-in scorers -----------------------------------------------------------------------------


class _Base:
    version = "1"
    uses_group = False
    uses_contexts = False

    def __init__(self, params: dict, env: ScoringEnv):
        self.params = params
        self.env = env
        self.name = ""


@register_scorer("length")
class LengthScorer(_Base):
    """Words in the answer."""

    def score(self, targets, group):
        return [float(len(t.answer.split())) for t in targets]


@register_scorer("language")
class LanguageScorer(_Base):
    """Share of three English-prose checks passed, 0 for text in another script (see the module docstring)."""

    def score(self, targets, group):
        return [language_score(f"{t.question} {t.answer}") for t in targets]


def language_score(text: str) -> float:
    words = text.split()
    if not words:
        return 0.0
    letters = [ch for ch in text if ch.isalpha()]
    latin = sum(1 for ch in letters if ch.isascii() or "\u00c0" <= ch <= "\u024f")
    if not letters or latin / len(letters) < 0.9:
        return 0.0
    checks = [
        sum(1 for w in words if any(ch.isalpha() for ch in w)) / len(words) >= 0.8,
        2 <= sum(len(w) for w in words) / len(words) <= 12,
        any(w.strip(".,;:!?()[]\"'").lower() in _FUNCTION_WORDS for w in words),
    ]
    return round(sum(checks) / len(checks), 4)


@register_scorer("grounding")
class GroundingScorer(_Base):
    """Share of the answer's content words found in its contexts; null without contexts or content words."""

    uses_contexts = True

    def score(self, targets, group):
        out = []
        for t in targets:
            words = content_words(t.answer)
            if t.contexts is None or not words:
                out.append(None)
                continue
            ctx = set().union(*(content_words(c) for c in t.contexts)) if t.contexts else set()
            out.append(len(words & ctx) / len(words))
        return out


@register_scorer("near_duplicate")
class NearDuplicateScorer(_Base):
    """Highest MinHash Jaccard to an earlier record of the group (see the module docstring)."""

    NUM_PERM, SHINGLE, LSH_THRESHOLD = 128, 5, 0.5
    uses_group = True

    def _minhash(self, t: ScoreInput):
        from datasketch import MinHash

        text = normalize(f"{t.question}\n{t.answer}")
        grams = {text[i : i + self.SHINGLE] for i in range(max(1, len(text) - self.SHINGLE + 1))}
        m = MinHash(num_perm=self.NUM_PERM, seed=1)
        m.update_batch([g.encode("utf-8") for g in sorted(grams)])
        return m

    def score(self, targets, group):
        from datasketch import MinHashLSH

        wanted = {t.key for t in targets}
        lsh = MinHashLSH(threshold=self.LSH_THRESHOLD, num_perm=self.NUM_PERM)
        hashes, best = {}, {}
        for t in sorted(group, key=lambda g: g.order):
            m = hashes[t.key] = self._minhash(t)
            if t.key in wanted:
                best[t.key] = max((m.jaccard(hashes[k]) for k in lsh.query(m)), default=0.0)
            lsh.insert(t.key, m)
        return [best.get(t.key, 0.0) for t in targets]


@register_scorer("eval_question")
class EvalQuestionScorer(_Base):
    """Highest similarity of the question to the named eval suites' questions (0..1)."""

    def __init__(self, params: dict, env: ScoringEnv):
        suites = params.get("suites") or []
        if isinstance(suites, str):
            suites = [suites]
        if not suites:
            raise ConfigError("scorer eval_question needs params.suites (eval suite names), e.g. --suite python-reference")
        missing = [s for s in suites if s not in env.suites]
        if missing:
            raise ConfigError(f"scorer eval_question: suites {missing} were not loaded")
        super().__init__({"suites": [env.suites[s][0] for s in suites]}, env)  # recorded as NAME@VERSION
        self.questions = [normalize(q) for s in suites for q in env.suites[s][1]]

    def score(self, targets, group):
        from rapidfuzz import fuzz, process

        out = []
        for t in targets:
            hit = process.extractOne(normalize(t.question), self.questions, scorer=fuzz.ratio) if self.questions else None
            out.append(round(hit[1] / 100.0, 4) if hit else 0.0)
        return out


JUDGE_SYSTEM = ("You grade answers of a retrieval-augmented assistant. Judge whether the answer is correct, answers the "
                "question and is supported by the contexts. Reply with a single integer from 1 (wrong or unsupported) to "
                "5 (correct, complete and supported).")


def judge_messages(t: ScoreInput) -> list[dict]:
    ctx = "\n\n".join(f"[{i}] {c}" for i, c in enumerate(t.contexts or [], 1)) or "(none)"
    user = f"Contexts:\n{ctx}\n\nQuestion: {t.question}\n\nAnswer: {t.answer}\n\nRating (1-5):"
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_rating(reply: str) -> float | None:
    """The first integer 1..5 in a reply, scaled to 0..1; None when there is none."""
    match = re.search(r"\b([1-5])\b", reply or "")
    return (int(match.group(1)) - 1) / 4.0 if match else None


@register_scorer("judge")
class JudgeScorer(_Base):
    """An OpenAI-compatible judge's rating (params base_url, model; the pipeline makes the client)."""

    uses_contexts = True

    def __init__(self, params: dict, env: ScoringEnv):
        if env.chat is None:
            raise ConfigError("scorer judge needs a judge endpoint (--judge-url and --judge-model)")
        super().__init__({k: params[k] for k in ("base_url", "model", "contexts") if k in params}, env)

    def score(self, targets, group):
        out = []
        for t in targets:
            try:
                out.append(parse_rating(self.env.chat(judge_messages(t))))
            except Exception:  # noqa: BLE001 - one failed judgement is a null score, not a failed run
                out.append(None)
        return out


# -- a judge ranking two answers (preference pairs from two deployments) ----------------------------

PAIR_JUDGE_SYSTEM = ("You compare two answers of a retrieval-augmented assistant to the same question. Prefer the answer that "
                     "is correct, answers the question and is supported by the contexts. Reply with 1 or 2 only.")


def pair_judge_messages(question: str, contexts: list[str], first: str, second: str, reference: str | None = None) -> list[dict]:
    ctx = "\n\n".join(f"[{i}] {c}" for i, c in enumerate(contexts or [], 1)) or "(none)"
    ref = f"Reference answer: {reference}\n\n" if reference else ""
    user = f"Contexts:\n{ctx}\n\nQuestion: {question}\n\n{ref}Answer 1: {first}\n\nAnswer 2: {second}\n\nBetter answer (1 or 2):"
    return [{"role": "system", "content": PAIR_JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_choice(reply: str) -> int | None:
    """1 or 2 from a judge's reply (the first such digit standing alone); None when there is none."""
    match = re.search(r"\b([12])\b", reply or "")
    return int(match.group(1)) if match else None


def rank_pair(chat: Callable[[list[dict]], str], question: str, contexts: list[str], a: str, b: str, reference: str | None = None) -> int | None:
    """0 when the judge prefers `a`, 1 for `b`, None when its two verdicts (both orders, against
    position bias) disagree or do not parse."""
    first = parse_choice(chat(pair_judge_messages(question, contexts, a, b, reference)))
    second = parse_choice(chat(pair_judge_messages(question, contexts, b, a, reference)))
    if first is None or second is None or first == second:  # the same position twice: no preference
        return None
    return 0 if first == 1 else 1
