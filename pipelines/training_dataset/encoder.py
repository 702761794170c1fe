"""Which PromptEncoder a training dataset is encoded with, resolved from `--model` and `--encoder`
through the model registry.

`--model` is a model version (`NAME:N`: its pinned tokenizer and, by default, its template and
budget, loaded through `ModelRegistry.load_encoder` so a mismatch is an error), a registered base
model name, or a local model folder. The resolved source is recorded exactly (a version number,
never "latest") so `recreate` rebuilds the same encoder, and the encoder fingerprint is checked.
"""

from __future__ import annotations

from pathlib import Path

from llmfti.errors import NotFoundError

DEFAULT_TEMPLATE = "rag-default"
DEFAULT_BUDGET = (1024, 256)  # PromptEncoder's defaults, for base models and folders


def load_template(template):
    """A PromptTemplate from a name/path, a dict (as stored in the lineage), or None."""
    from llmfti.transforms.model_dependent import PromptTemplate, load_prompt_template

    if template is None or isinstance(template, PromptTemplate):
        return template
    if isinstance(template, dict):
        return PromptTemplate.model_validate(template)
    return load_prompt_template(template)


def resolve_model(home, model: str) -> dict:
    """{'kind': 'model_version'|'base_model'|'folder', 'ref': exact reference} for `model`."""
    from llmfti.registry import ModelRegistry

    reg = ModelRegistry(home)
    if ":" in model:
        return {"kind": "model_version", "ref": reg.get(model).ref}
    if reg.get_base(model, must_exist=False) is not None:
        return {"kind": "base_model", "ref": model}
    if Path(model).expanduser().is_dir():
        return {"kind": "folder", "ref": str(Path(model).expanduser().resolve())}
    if reg.versions(model):
        return {"kind": "model_version", "ref": reg.get(model).ref}
    raise NotFoundError(
        f"--model {model!r} is neither a model version, a registered base model nor a model folder",
        hint="llmfti models import SOURCE --name NAME, or give NAME:VERSION of a registered model",
    )


def build_encoder(home, source: dict, template=None, max_prompt_tokens: int | None = None, max_answer_tokens: int | None = None):
    """The PromptEncoder for a resolved model source (see resolve_model)."""
    from llmfti.registry import ModelRegistry
    from llmfti.transforms.model_dependent import PromptEncoder

    template = load_template(template)
    reg = ModelRegistry(home)
    if source["kind"] == "model_version":
        return reg.load_encoder(source["ref"], template=template, max_prompt_tokens=max_prompt_tokens, max_answer_tokens=max_answer_tokens)
    folder = reg.base_path(source["ref"]) if source["kind"] == "base_model" else Path(source["ref"])
    return PromptEncoder.from_model_dir(
        folder, template or load_template(DEFAULT_TEMPLATE),
        max_prompt_tokens or DEFAULT_BUDGET[0], max_answer_tokens or DEFAULT_BUDGET[1],
    )


def encoder_lineage(encoder, source: dict) -> dict:
    """What the dataset records about its encoder: enough to rebuild it and to verify the rebuild."""
    return {
        "fingerprint": encoder.fingerprint,
        "components": encoder.fingerprint_components,
        "prompt_template": encoder.template.name,
        "prompt_template_version": encoder.template.version,
        "template": encoder.template.model_dump(mode="json"),
        "max_prompt_tokens": encoder.max_prompt_tokens,
        "max_answer_tokens": encoder.max_answer_tokens,
        "model": source,
    }
