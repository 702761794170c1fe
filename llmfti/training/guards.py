"""Checks against the silent failures of fine-tuning; each raises a `TrainingGuardError` on failure.

- `check_labels_end_with_eos` (before training): if no answer ends with EOS, the model cannot learn
  to stop — the most common template bug, caught before spending GPU hours.
- `check_adapter_changes_output` (after): logits with and without the adapter must differ on a probe
  prompt. A LoRA adapter starts as a no-op (B = 0); a zero learning rate, frozen LoRA parameters, a
  target list that matched the wrong modules or a bad save all leave it one.
- `check_emits_eos` (after): greedy generations from training-style prompts must end with EOS
  within a budget; a model that never stops is useless behind an API.
"""

from __future__ import annotations

from llmfti.errors import LlmftiError
from llmfti.training.data import IGNORE


class TrainingGuardError(LlmftiError):
    """A post- or pre-training check failed: the model would be silently wrong."""

    exit_code = 6


class AdapterNoOpError(TrainingGuardError):
    """The trained adapter does not change the model's output."""


class NoEosError(TrainingGuardError):
    """The data or the trained model does not produce the end-of-sequence token."""


def prompt_of(example: dict) -> list[int]:
    """The prompt part of an encoded example: tokens before the first loss-bearing label."""
    for i, lab in enumerate(example["labels"]):
        if i > 0 and lab != IGNORE:
            return example["input_ids"][:i]
    return example["input_ids"][:1]


def eos_ids_of(tokenizer, model=None) -> set[int]:
    ids: set[int] = set()
    for src in (getattr(tokenizer, "eos_token_id", None), getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(x) for x in src)
    return ids


def check_labels_end_with_eos(examples: list[dict], eos_ids: set[int], mode: str = "error") -> float:
    """Share of examples whose last label is EOS; none at all is an error (mode 'error')."""
    if mode == "off" or not examples:
        return 1.0
    share = sum(1 for e in examples if e["labels"][-1] in eos_ids) / len(examples)
    if share == 0 and mode == "error":
        raise NoEosError(
            f"no training answer ends with EOS {sorted(eos_ids)}: the model would never learn to stop",
            hint="the encoder must append the tokenizer's eos token to every answer (or set guards.eos=off)",
        )
    return share


def check_adapter_changes_output(peft_model, probe_ids: list[int], *, min_delta: float = 1e-4, device=None) -> float:
    """Max |logit difference| on the probe between adapter on and off; below `min_delta` raises."""
    delta = logit_delta(peft_model, probe_ids, peft_model.disable_adapter, device=device)
    if not delta > min_delta:  # also catches NaN
        raise AdapterNoOpError(
            f"the adapter does not change the model's output (max |logit delta| {delta:.3g} <= {min_delta:g})",
            hint="check lr, lora.target_modules and that training ran any steps",
        )
    return delta


def logit_delta(peft_model, probe_ids: list[int], reference, *, device=None) -> float:
    """Max |logit difference| on the probe between the model as it is and inside the `reference()`
    context (adapter disabled, or another adapter active); the model's train/eval mode is kept."""
    import torch

    device = device or next(peft_model.parameters()).device
    x = torch.tensor([probe_ids], device=device)
    was_training = peft_model.training
    peft_model.eval()
    with torch.no_grad():
        on = peft_model(input_ids=x, use_cache=False).logits.float()
        with reference():
            off = peft_model(input_ids=x, use_cache=False).logits.float()
    peft_model.train(was_training)
    return float((on - off).abs().max())


def check_emits_eos(peft_model, prompts: list[list[int]], eos_ids: set[int], *, max_new_tokens: int,
                    min_fraction: float = 0.5, mode: str = "error", pad_id: int | None = None, device=None) -> dict:
    """Greedy-generate from each prompt; at least `min_fraction` of them must emit EOS."""
    import torch

    if mode == "off" or not prompts:
        return {"probes": 0, "with_eos": 0, "checked": False}
    device = device or next(peft_model.parameters()).device
    was_training = peft_model.training
    peft_model.eval()
    hits = 0
    with torch.no_grad():
        for ids in prompts:
            out = peft_model.generate(
                input_ids=torch.tensor([ids], device=device), attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                eos_token_id=sorted(eos_ids), pad_token_id=pad_id if pad_id is not None else min(eos_ids),
            )
            new = out[0, len(ids):].tolist()
            hits += any(t in eos_ids for t in new)
    peft_model.train(was_training)
    report = {"probes": len(prompts), "with_eos": hits, "checked": True}
    if hits / len(prompts) < min_fraction:
        msg = f"only {hits}/{len(prompts)} probe generations emitted EOS within {max_new_tokens} tokens"
        if mode == "error":
            raise NoEosError(msg, hint="train longer, check that answers end with EOS, or set guards.eos=warn")
        report["warning"] = msg
    return report
