"""Registering a fine-tuning result as a model version: the ONE place that talks to the registry.

The registry records lineage (training dataset version), the encoder fingerprint, the adapter and its
hash, final metrics and the training config. When `llmfti.registry` is not installed in this tree the
result is still fully written to its run folder (`result.json`) and this returns a reason instead.
"""

from __future__ import annotations


def register_result(
    home,
    *,
    name: str,
    base_model: str,
    adapter_dir: str,
    encoder=None,
    prompt_template: str | None = None,
    training_dataset: str | None = None,
    metrics: dict | None = None,
    config: dict | None = None,
) -> dict:
    """Register and return `{"registered": True, "version": ...}`, or `{"registered": False, "reason": ...}`."""
    try:
        from llmfti.registry import ModelRegistry
    except ImportError as exc:
        return {"registered": False, "reason": f"model registry unavailable ({exc})"}
    mv = ModelRegistry(home).register_version(
        name,
        base_model=base_model,
        adapter_dir=adapter_dir,
        encoder=encoder,
        prompt_template=prompt_template,
        training_dataset=training_dataset,
        metrics=metrics,
        config=config,
    )
    out = {"registered": True}
    for attr in ("ref", "name", "version", "adapter_sha256"):
        if hasattr(mv, attr):
            out[attr] = getattr(mv, attr)
    if "ref" not in out and "version" in out:
        out["ref"] = f"{name}:{out['version']}"
    return out
