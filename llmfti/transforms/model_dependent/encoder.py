"""PromptEncoder: THE model-dependent transformation, shared by the training-dataset encoder and the agent.

It owns the prompt template, the tokenizer (with its chat template) and the context budget. Training
calls `encode_example` (prompt ids + answer ids + EOS, loss only on the answer); serving calls
`encode_prompt`. `encode_example` builds its prompt by calling `encode_prompt`, so the prompt tokens a
model is trained on are byte-identical to the ones it is served with: no training/serving skew.

    enc = PromptEncoder.from_model_dir("artifacts/models/base/SmolLM2-135M-Instruct", load_prompt_template("rag-default"))
    p = enc.encode_prompt("What does yield do?", [Context("c1", "Generators yield values lazily.")])
    ex = enc.encode_example("What does yield do?", "It produces values lazily [1].", [Context(...)])

Truncation (when the rendered prompt exceeds `max_prompt_tokens`): the lowest-ranked contexts are
dropped first (contexts come best first) until the prompt fits; if even the best context alone does
not fit, its text is trimmed at a token boundary; the question is never cut (PromptTooLong instead).

Untrusted text (the question, retrieved contexts, feature values, answers) never becomes special
tokens: `<|im_end|>\n<|im_start|>system` typed into a question is encoded as ordinary text, so nobody
can forge a system turn (see `_tokenize`). Text without such strings encodes exactly as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from llmfti.errors import ConfigError
from llmfti.transforms.model_dependent import fingerprint as fp
from llmfti.transforms.model_dependent.template import Context, PromptTemplate, load_prompt_template

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy skips


class PromptTooLong(ConfigError):
    """The question (plus the template) alone exceeds the prompt budget; the question is never cut."""


@dataclass
class EncodedPrompt:
    input_ids: list[int]
    text: str
    contexts_used: list[Context]
    truncated: bool
    fingerprint: str
    contexts_dropped: int = 0


@dataclass
class EncodedExample:
    input_ids: list[int]
    labels: list[int]
    prompt_length: int
    fingerprint: str = ""
    truncated: bool = False  # the prompt's contexts were dropped or trimmed
    answer_truncated: bool = False  # the answer was cut to max_answer_tokens (EOS still appended)
    contexts_used: list[Context] = field(default_factory=list)


class PromptEncoder:
    """Prompt template + tokenizer + chat template + budget. Treat it as immutable: the fingerprint is
    computed once, so do not modify the tokenizer after building an encoder from it."""

    def __init__(self, tokenizer, template: PromptTemplate | str, max_prompt_tokens: int = 1024, max_answer_tokens: int = 256):
        if isinstance(template, (str, Path)):
            template = load_prompt_template(template)
        if max_prompt_tokens < 1 or max_answer_tokens < 2:
            raise ConfigError("max_prompt_tokens must be >= 1 and max_answer_tokens >= 2 (room for one token and EOS)")
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("the tokenizer has no chat template", hint="set tokenizer.chat_template (a Jinja string) before building an encoder")
        if tokenizer.eos_token_id is None:
            raise ConfigError("the tokenizer has no EOS token: fine-tuned models could never learn to stop")
        self.tokenizer = tokenizer
        self.template = template
        self.max_prompt_tokens = int(max_prompt_tokens)
        self.max_answer_tokens = int(max_answer_tokens)
        self._components = {
            "tokenizer_files": fp.tokenizer_fingerprint(tokenizer),
            "chat_template": fp.chat_template_fingerprint(tokenizer),
            "prompt_template": fp.sha256_json(template.model_dump(mode="json")),
            "budget": fp.budget_fingerprint(self.max_prompt_tokens, self.max_answer_tokens),
        }
        self._fingerprint = fp.combine(self._components)

    @classmethod
    def from_model_dir(cls, path: str | Path, template: PromptTemplate | str, max_prompt_tokens: int = 1024, max_answer_tokens: int = 256) -> "PromptEncoder":
        """Load the tokenizer of a local model (or tokenizer) folder; never reaches a hub."""
        from transformers import AutoTokenizer

        path = Path(path)
        if not path.is_dir():
            raise ConfigError(f"model folder not found: {path}")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # transformers raises assorted types for unreadable tokenizer files
            raise ConfigError(f"cannot load the tokenizer in {path}: {exc}") from exc
        return cls(tokenizer, template, max_prompt_tokens, max_answer_tokens)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def fingerprint_components(self) -> dict[str, str]:
        return dict(self._components)

    @property
    def eos_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def pad_token_id(self) -> int:
        """The id used to fill padding. Padding is masked by position (attention mask 0, label -100),
        never by id, so falling back to EOS when a tokenizer has no pad token is safe: EOS labels survive."""
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else self.eos_token_id

    def describe(self) -> dict:
        return {
            "prompt_template": self.template.name,
            "prompt_template_version": self.template.version,
            "max_prompt_tokens": self.max_prompt_tokens,
            "max_answer_tokens": self.max_answer_tokens,
            "eos_token": self.tokenizer.eos_token,
            "pad_token": self.tokenizer.pad_token,
            "fingerprint": self.fingerprint,
            "fingerprint_components": self.fingerprint_components,
        }

    # -- encoding -------------------------------------------------------------------------------

    def _ids(self, text: str) -> list[int]:
        """Ids of trusted text (the rendered template): special-token strings become special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _plain_ids(self, text: str) -> list[int]:
        """Ids of untrusted text: special-token strings in it are split into ordinary tokens."""
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    @property
    def _special(self) -> tuple[set[int], re.Pattern | None]:
        """Ids and a regex of the strings the tokenizer turns into special tokens (cached)."""
        if not hasattr(self, "_special_cache"):
            decoder = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
            tokens = {str(t.content): int(i) for i, t in decoder.items() if getattr(t, "special", False)}
            ids = set(tokens.values()) | set(getattr(self.tokenizer, "all_special_ids", []) or [])
            pattern = re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))) if tokens else None
            self._special_cache = (ids, pattern)
        return self._special_cache

    def _render(self, question: str, contexts: list[Context], features: dict | None) -> tuple[str, list[int]]:
        messages = self.template.messages(question, contexts, features)
        values: list[str] = []
        mark = _marker(values)
        marked_ctx = [replace(c, text=mark(c.text), source=mark(c.source), chunk_id=mark(c.chunk_id)) for c in contexts]
        marked_feat = {k: mark(v) for k, v in (features or {}).items()}
        marked = self.template.messages(mark(question), marked_ctx, marked_feat)
        return self._chat_ids(messages, marked, values)

    def _chat_ids(self, messages: list[dict], marked: list[dict], values: list[str], tools: list[dict] | None = None) -> tuple[str, list[int]]:
        """Render `messages` with the chat template and tokenize; `marked` is the same conversation with
        a marker in place of every untrusted value (`values`), used only when special-token strings
        appear that the template itself did not write."""
        kwargs = {"tools": tools} if tools else {}
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
        # Tokenize the rendered text ourselves (no extra BOS: chat templates write their own specials).
        ids = self._ids(text)
        special_ids, _ = self._special
        if not any(i in special_ids for i in ids):
            return text, ids
        skeleton = self.tokenizer.apply_chat_template(marked, tokenize=False, add_generation_prompt=True, **kwargs)
        if [i for i in ids if i in special_ids] == [i for i in self._ids(_template_text(skeleton)) if i in special_ids]:
            return text, ids  # every special token comes from the template itself: nothing was forged
        return self._tokenize(skeleton, values)

    def encode_messages(self, messages: list[dict], tools: list[dict] | None = None) -> EncodedPrompt:
        """A whole conversation (the tool loop: user turn, assistant tool calls, tool results) through
        the same chat template, special-token protection and budget as `encode_prompt`: every message's
        content is untrusted text. Over `max_prompt_tokens` it raises PromptTooLong (a tool loop cannot
        drop turns without changing what the model saw)."""
        values: list[str] = []
        mark = _marker(values)
        marked = [{**m, "content": mark(m.get("content") or "")} for m in messages]
        text, ids = self._chat_ids([{**m, "content": m.get("content") or ""} for m in messages], marked, values, tools)
        if len(ids) > self.max_prompt_tokens:
            raise PromptTooLong(f"the conversation needs {len(ids)} tokens, over max_prompt_tokens={self.max_prompt_tokens}",
                                hint="raise max_prompt_tokens or lower max_tool_rounds")
        return EncodedPrompt(ids, text, [], False, self.fingerprint)

    def _tokenize(self, skeleton: str, values: list[str]) -> tuple[str, list[int]]:
        """Encode a rendering whose untrusted values contain special-token strings: special tokens are
        recognised only in the template's own text. The tokenizer splits its input at special tokens
        before anything else, so encoding the text between them piece by piece gives the same ids as
        encoding it whole; the pieces are encoded with special-token strings taken literally."""
        special_ids, pattern = self._special
        ids: list[int] = []
        text_parts: list[str] = []
        pending = ""
        for piece in re.split(r"(\ue000\d+\ue001)", skeleton):
            marker = re.fullmatch(r"\ue000(\d+)\ue001", piece)
            if marker:
                pending += values[int(marker.group(1))]
                continue
            pos = 0
            for match in pattern.finditer(piece) if pattern else ():
                pending += piece[pos:match.start()]
                if pending:
                    ids += self._plain_ids(pending)
                    text_parts.append(pending)
                    pending = ""
                ids.append(int(self.tokenizer.convert_tokens_to_ids(match.group())))
                text_parts.append(match.group())
                pos = match.end()
            pending += piece[pos:]
        if pending:
            ids += self._plain_ids(pending)
            text_parts.append(pending)
        return "".join(text_parts), ids

    def encode_prompt(self, question: str, contexts: Sequence[Context] = (), features: dict | None = None) -> EncodedPrompt:
        """Token ids of the chat prompt (with the generation prompt), within `max_prompt_tokens`."""
        ctx = list(contexts) if self.template.uses_contexts else []
        text, ids = self._render(question, ctx, features)
        if len(ids) <= self.max_prompt_tokens:
            return EncodedPrompt(ids, text, ctx, False, self.fingerprint)
        fits = lambda k: len(self._render(question, ctx[:k], features)[1]) <= self.max_prompt_tokens  # noqa: E731
        keep = _largest_true(fits, 0, len(ctx) - 1)  # len(ctx) itself is known not to fit
        if keep >= 1:
            kept = ctx[:keep]
        elif ctx:
            trimmed = self._trim(question, ctx[0], features)
            kept = [trimmed] if trimmed is not None else []
        else:
            kept = []
        text, ids = self._render(question, kept, features)
        if len(ids) > self.max_prompt_tokens:
            raise PromptTooLong(
                f"the prompt needs {len(ids)} tokens without contexts, over max_prompt_tokens={self.max_prompt_tokens}",
                hint="shorten the question or raise max_prompt_tokens (the question is never cut)",
            )
        return EncodedPrompt(ids, text, kept, True, self.fingerprint, contexts_dropped=len(ctx) - len(kept))

    def _trim(self, question: str, context: Context, features: dict | None) -> Context | None:
        """The longest token-boundary prefix of `context` that fits, or None when not even one token does."""
        cuts = self._cut_points(context.text)
        fits = lambda i: len(self._render(question, [replace(context, text=context.text[: cuts[i]])], features)[1]) <= self.max_prompt_tokens  # noqa: E731
        best = _largest_true(fits, 0, len(cuts) - 1)
        if best < 0 or cuts[best] == 0:
            return None
        return replace(context, text=context.text[: cuts[best]])

    def _cut_points(self, text: str) -> list[int]:
        """Character positions where `text` may be cut: token ends (fast tokenizers) or word ends."""
        try:
            offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            ends = sorted({int(e) for _, e in offsets})
        except (NotImplementedError, KeyError, TypeError):
            ends = [i for i, ch in enumerate(text) if ch.isspace()] + [len(text)]
        return [0] + [e for e in ends if 0 < e <= len(text)]

    def encode_example(self, question: str, answer: str, contexts: Sequence[Context] = (), features: dict | None = None) -> EncodedExample:
        """A training example: encode_prompt(...) ids, then the answer's ids and EOS. Labels are -100 on
        every prompt token, so the loss is on the answer (and its EOS: fine-tuned models learn to stop)."""
        prompt = self.encode_prompt(question, contexts, features)
        answer_ids = self._plain_ids(answer)  # training data is untrusted text too: no special tokens mid-answer
        room = self.max_answer_tokens - 1
        cut = len(answer_ids) > room
        answer_ids = answer_ids[:room] + [self.eos_token_id]
        return EncodedExample(
            input_ids=prompt.input_ids + answer_ids,
            labels=[IGNORE_INDEX] * len(prompt.input_ids) + answer_ids,
            prompt_length=len(prompt.input_ids),
            fingerprint=self.fingerprint,
            truncated=prompt.truncated,
            answer_truncated=cut,
            contexts_used=prompt.contexts_used,
        )

    def pad_batch(self, batch: Sequence[EncodedExample | EncodedPrompt | list[int]], side: str = "right", pad_to_multiple_of: int | None = None) -> dict[str, list[list[int]]]:
        """Pad to one length: input_ids with pad_token_id, attention_mask 0 and labels -100 on padding.
        Use side='left' for batched generation. Returns lists (no torch) so any trainer can tensorize."""
        if side not in ("left", "right"):
            raise ConfigError("side must be 'left' or 'right'")
        rows = [b if isinstance(b, list) else b.input_ids for b in batch]
        labels = [b.labels if isinstance(b, EncodedExample) else None for b in batch]
        width = max((len(r) for r in rows), default=0)
        if pad_to_multiple_of:
            width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
        out: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": []}
        if all(lab is not None for lab in labels) and labels:
            out["labels"] = []

        def pad(seq: list[int], value: int) -> list[int]:
            fill = [value] * (width - len(seq))
            return fill + seq if side == "left" else seq + fill

        for row, lab in zip(rows, labels):
            out["input_ids"].append(pad(list(row), self.pad_token_id))
            out["attention_mask"].append(pad([1] * len(row), 0))
            if "labels" in out:
                out["labels"].append(pad(list(lab), IGNORE_INDEX))
        return out


def _marker(values: list[str]):
    """A function that records an untrusted value and returns its private-use marker."""

    def mark(value) -> str:
        values.append(str(value))
        return f"\ue000{len(values) - 1}\ue001"

    return mark


def _template_text(skeleton: str) -> str:
    """The skeleton with its markers removed: the template's own text only."""
    return re.sub("\ue000\\d+\ue001", "", skeleton)


def _largest_true(pred, lo: int, hi: int) -> int:
    """Largest i in [lo, hi] with pred(i) true, assuming pred is monotone (true then false); lo-1 if none.
    Rendered length grows with every added context or character, so binary search is exact."""
    best = lo - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if pred(mid):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best
