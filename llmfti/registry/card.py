"""Markdown model cards generated from what the registry knows about a version: nothing is typed by
hand, so a card can never disagree with the registry. Free text (intended use, limitations) comes
from the version's `config` when the training pipeline supplied it."""

from __future__ import annotations

import json

DEFAULT_USE = {
    "rag-default": "Answering questions from retrieved contexts (retrieval-augmented generation), citing the numbered contexts.",
    "plain": "General chat answers without retrieved contexts.",
}
GENERIC_LIMITS = [
    "Answers can be wrong or invented, even when citing contexts; check cited sources for anything that matters.",
    "Quality depends on the retrieved contexts: a deployment pins the feature-group version it was evaluated with.",
    "Prompts longer than the budget lose their lowest-ranked contexts first; the question is never cut.",
]


def _fmt_params(n) -> str:
    if not n:
        return "unknown"
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n:,}"


def _table(rows: dict) -> list[str]:
    if not rows:
        return ["_none recorded_"]
    out = ["| name | value |", "|---|---|"]
    out += [f"| {k} | {json.dumps(v) if isinstance(v, (dict, list)) else v} |" for k, v in sorted(rows.items())]
    return out


def render_model_card(mv, base: dict | None) -> str:
    cfg = mv.config or {}
    base = base or {}
    lines = [
        f"# Model card: {mv.ref}",
        "",
        f"Status: **{mv.status}**, registered {mv.created_at:%Y-%m-%d %H:%M} UTC. "
        + ("Fine-tuned LoRA adapter" if mv.adapter_sha256 else "Base model served as is (no adapter)")
        + f" on base model `{mv.base_model}`.",
        "",
        "## Intended use",
        "",
        cfg.get("intended_use") or DEFAULT_USE.get(mv.prompt_template, f"Prompted with template `{mv.prompt_template}`."),
        "",
        "## Model details",
        "",
        f"- Base model: `{mv.base_model}` from `{base.get('source', 'unknown')}` ({base.get('source_kind', '?')})",
        f"- Architecture: {base.get('architecture', 'unknown')}, {_fmt_params(base.get('parameters'))} parameters, context length {base.get('context_length') or 'unknown'}",
        f"- License: {base.get('license') or 'unknown (check the base model source)'}",
        f"- Base weights sha256: `{base.get('weights_sha256', 'unknown')}`",
        f"- Adapter sha256: `{mv.adapter_sha256}`" if mv.adapter_sha256 else "- Adapter: none",
        "",
        "## Prompt encoding (model-dependent transformation)",
        "",
        f"- Prompt template: `{mv.prompt_template}` v{mv.prompt_template_version}",
        f"- Budget: {mv.max_prompt_tokens} prompt tokens, {mv.max_answer_tokens} answer tokens",
        f"- Encoder fingerprint: `{mv.encoder_fingerprint}`",
    ]
    lines += [f"  - {k}: `{v}`" for k, v in sorted(mv.fingerprint_components.items())]
    lines += ["", "Serving refuses to load this version with any other tokenizer, chat template, prompt template or budget.", "", "## Data lineage", ""]
    ds = (mv.lineage or {}).get("training_dataset")
    if mv.training_dataset:
        lines.append(f"- Training dataset: `{mv.training_dataset}`")
        if ds and ds.get("resolved"):
            lines += ["", "```json", json.dumps(ds.get("dataset"), indent=2, default=str), "```"]
        elif ds:
            lines.append(f"  - feature-group commits: not resolved ({ds.get('note', 'unknown')})")
    else:
        lines.append("- Training dataset: none (not fine-tuned by llmfti)")
    lines += [f"- Base model: `{base.get('name', mv.base_model)}` (weights `{str(base.get('weights_sha256', '?'))[:16]}…`)", "", "## Metrics", ""]
    lines += _table(mv.metrics or {})
    lines += ["", "## Evaluations", ""]
    if mv.evals:
        for e in mv.evals:
            summary = {k: v for k, v in e.items() if k != "recorded_at"}
            lines.append(f"- {e.get('recorded_at', '')}: `{json.dumps(summary, default=str, sort_keys=True)}`")
    else:
        lines.append("_no evaluation recorded yet (the eval gate records results before promotion)_")
    lines += ["", "## Limitations", ""]
    lines += [f"- {x}" for x in (cfg.get("limitations") or []) + GENERIC_LIMITS]
    if mv.training_dataset is None and not mv.adapter_sha256:
        lines.append("- Not fine-tuned here: behaviour is the base model's own.")
    lines += ["", "## Training configuration", ""]
    lines += _table({k: v for k, v in cfg.items() if k not in ("intended_use", "limitations")})
    lines += ["", "## Loading", "", "```python", "from llmfti.registry import ModelRegistry", f'model, tokenizer, encoder = ModelRegistry().load_model("{mv.ref}")', "```", ""]
    return "\n".join(lines)
