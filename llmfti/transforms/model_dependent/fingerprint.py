"""Fingerprints of the model-dependent transformation, and the error raised when two differ.

The fingerprint is a sha256 over four components, each a sha256 itself:

- `tokenizer_files`: what the tokenizer files define, canonicalised (the fast tokenizer's JSON
  without its runtime padding/truncation state, special and added tokens, class, padding side).
  Hashing the loaded definition instead of raw bytes means a tokenizer built in memory and the same
  tokenizer saved and reloaded agree; raw file bytes are additionally pinned as artifact hashes.
- `chat_template`: the chat template text the tokenizer renders with.
- `prompt_template`: the PromptTemplate's fields (canonical JSON).
- `budget`: max prompt/answer tokens and the truncation algorithm's version.
"""

from __future__ import annotations

import json

from llmfti.errors import IncompatibleError
from llmfti.hashing import sha256_json, sha256_text

COMPONENTS = ("tokenizer_files", "chat_template", "prompt_template", "budget")
LABELS = {
    "tokenizer_files": "tokenizer files",
    "chat_template": "chat template",
    "prompt_template": "prompt template",
    "budget": "budget",
}
# Bump when encode_prompt/encode_example change behaviour: old registrations must then mismatch.
ENCODER_ALGORITHM = "llmfti-prompt-encoder/1"
_SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")


def tokenizer_definition(tokenizer) -> dict:
    """The canonical description of a Hugging Face tokenizer that its files encode."""
    out: dict = {"class": type(tokenizer).__name__}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        # Calling the tokenizer with padding=/truncation= mutates these: runtime state, not definition.
        spec.pop("padding", None)
        spec.pop("truncation", None)
        out["backend"] = spec
    else:  # slow (Python) tokenizers: the vocabulary is what the files define
        out["vocab"] = sorted(tokenizer.get_vocab().items())
    out["special"] = {k: str(getattr(tokenizer, k, None)) for k in _SPECIAL}
    out["all_special"] = sorted(str(t) for t in tokenizer.all_special_tokens)
    out["added"] = sorted((int(i), str(t)) for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items())
    out["padding_side"] = getattr(tokenizer, "padding_side", None)
    return out


def tokenizer_fingerprint(tokenizer) -> str:
    return sha256_json(tokenizer_definition(tokenizer))


def chat_template_fingerprint(tokenizer) -> str:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: hash them all, in name order
        return sha256_json(template)
    return sha256_text(template or "")


def budget_fingerprint(max_prompt_tokens: int, max_answer_tokens: int) -> str:
    return sha256_json({"max_prompt_tokens": max_prompt_tokens, "max_answer_tokens": max_answer_tokens, "algorithm": ENCODER_ALGORITHM})


def combine(components: dict[str, str]) -> str:
    return sha256_json({k: components[k] for k in COMPONENTS})


def differences(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """Component names that differ, in the fixed order tokenizer files, chat template, prompt template, budget."""
    return [k for k in COMPONENTS if expected.get(k) != actual.get(k)]


class FingerprintMismatch(IncompatibleError):
    """The encoder being loaded is not the one a model version was registered with."""

    def __init__(self, what: str, diffs: list[str], *, details: list[str] | None = None, hint: str | None = None):
        named = ", ".join(LABELS.get(d, d) for d in diffs)
        message = f"{what}: fingerprint mismatch in {named}"
        if details:
            message += " (" + "; ".join(details) + ")"
        super().__init__(message, hint=hint)
        self.differences = list(diffs)
        self.details = list(details or [])

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["differences"] = self.differences
        if self.details:
            out["details"] = self.details
        return out
