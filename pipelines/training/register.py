"""Registering a fine-tuning result as a model version: the ONE place that talks to the registry.

The registry records lineage (the training dataset version, which names its feature-group commits),
the encoder fingerprint, the adapter and its hash, final metrics and the training config.

The encoder registered is the one the examples were encoded with (rebuilt by the dataset and
verified against its recorded fingerprint), so serving builds the prompts training saw. Data that
does not know its encoder (a bare JSONL/parquet file) is not registered: pinning a guessed encoder
would be exactly the training/serving skew the registry exists to prevent. The run folder keeps the
full result either way, and the reason is returned instead of raising after a finished training.
"""

from __future__ import annotations

from pathlib import Path

from llmfti.errors import LlmftiError


def _encoder(encoder, base_path, prompt_template):
    """A PromptEncoder from an encoder, a recorded spec {fingerprint, prompt_template, budget} or None."""
    if encoder is None or hasattr(encoder, "fingerprint_components"):
        return encoder, None
    spec = dict(encoder)
    template = spec.get("prompt_template") or prompt_template
    if not spec.get("fingerprint") or not template:
        return None, "the training data records no prompt encoder (prompt encoder unavailable)"
    from llmfti.transforms.model_dependent import PromptEncoder

    rebuilt = PromptEncoder.from_model_dir(base_path, template, spec.get("max_prompt_tokens", 1024), spec.get("max_answer_tokens", 256))
    if rebuilt.fingerprint != spec["fingerprint"]:
        return None, f"the base model's tokenizer with template {template!r} does not reproduce the data's encoder fingerprint {spec['fingerprint'][:12]}"
    return rebuilt, None


def _base_name(reg, base_model: str, base_path: str | None) -> str:
    """A registered base-model name for `base_model`; a local folder is imported (idempotent) first."""
    from llmfti.errors import ConfigError

    if reg.get_base(base_model, must_exist=False) is not None:
        return base_model
    folder = Path(base_path or base_model)
    if not folder.is_dir():
        return base_model  # register_version raises NotFoundError naming it
    name = "".join(ch if ch.isalnum() or ch in "_-." else "-" for ch in folder.name).lstrip("-_.") or "base"
    try:
        return reg.import_base_model(str(folder), name)["name"]
    except ConfigError:  # the name is taken by another source: disambiguate by content
        from llmfti.registry.base_models import resolve_source, source_hash

        kind, path = resolve_source(str(folder))
        return reg.import_base_model(str(folder), f"{name}-{source_hash(kind, path)[:8]}")["name"]


def register_result(
    home,
    *,
    name: str,
    base_model: str,
    adapter_dir: str,
    encoder=None,
    prompt_template: str | None = None,
    training_dataset: str | None = None,
    dataset_lineage: dict | None = None,
    metrics: dict | None = None,
    config: dict | None = None,
    base_model_path: str | None = None,
) -> dict:
    """Register and return `{"registered": True, "ref": ..., ...}`, or `{"registered": False, "reason": ...}`.

    `encoder` is a PromptEncoder (preferred), a recorded spec dict, or None (not registered, see above).
    `base_model` is a registered base-model name or a local folder (imported as a base model first)."""
    try:
        from llmfti.registry import ModelRegistry
    except ImportError as exc:
        return {"registered": False, "reason": f"model registry unavailable ({exc})"}
    reg = ModelRegistry(home)
    try:
        base = _base_name(reg, base_model, base_model_path)
        enc, why = _encoder(encoder, reg.base_path(base) if reg.get_base(base, must_exist=False) else base_model_path, prompt_template)
        if enc is None:
            return {"registered": False, "reason": why or "the training data records no prompt encoder (prompt encoder unavailable)"}
        base_tok = reg.get_base(base).get("tokenizer_fingerprint")
        if base_tok and base_tok != enc.fingerprint_components["tokenizer_files"]:
            return {"registered": False, "reason": f"the examples were encoded with another tokenizer than base model {base!r}'s"}
        mv = reg.register_version(name, base_model=base, adapter_dir=adapter_dir, encoder=enc, training_dataset=training_dataset,
                                  dataset_lineage=dataset_lineage,
                                  metrics=metrics, config=config)
    except LlmftiError as exc:  # training finished: report why registration failed rather than lose the result
        return {"registered": False, "reason": f"{type(exc).__name__}: {exc}"}
    return {"registered": True, "ref": mv.ref, "name": mv.name, "version": mv.version, "base_model": base,
            "adapter_sha256": mv.adapter_sha256, "encoder_fingerprint": mv.encoder_fingerprint}
