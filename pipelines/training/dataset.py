"""Reading a training dataset `NAME:VERSION` from the store for the fine-tuning run: its encoded
rows, the encoder that made them (rebuilt from the pinned files and verified) and its lineage.
`read_training_dataset` gives SFT examples (input_ids, labels), `read_preference_dataset` preference
pairs (prompt_ids, chosen_ids, rejected_ids) for the alignment run."""

from __future__ import annotations

from llmfti.errors import ConfigError
from llmfti.training.data import DatasetInfo


def read_training_dataset(ref: str, home) -> tuple[list[dict], DatasetInfo]:
    from llmfti.store import FeatureStore

    name, _, version = ref.rpartition(":")
    if not name or not version.isdigit():
        raise ConfigError(f"training dataset {ref!r}: give NAME:VERSION (a number) so the run records an exact lineage")
    ds = FeatureStore(home).training_dataset(ref)
    if ds.kind != "sft":
        raise ConfigError(f"training dataset {ds.ref} holds {ds.kind} (prompt, chosen, rejected): train it with method: dpo")
    rows = ds.examples(columns=["example_id", "input_ids", "labels", "split"])
    e = ds.lineage["encoder"]
    summary = {k: e[k] for k in ("fingerprint", "prompt_template", "prompt_template_version", "max_prompt_tokens", "max_answer_tokens")}
    info = DatasetInfo(ref=ds.ref, encoder={**summary, "training_dataset": ds.ref}, extra={"content_hash": ds.content_hash},
                       encoder_factory=ds.encoder, lineage=ds.describe())
    return [{"input_ids": r["input_ids"], "labels": r["labels"], "split": r["split"]} for r in rows], info


def read_preference_dataset(ref: str, home) -> tuple[list[dict], DatasetInfo]:
    from llmfti.store import FeatureStore

    name, _, version = ref.rpartition(":")
    if not name or not version.isdigit():
        raise ConfigError(f"preference dataset {ref!r}: give NAME:VERSION (a number) so the run records an exact lineage")
    ds = FeatureStore(home).training_dataset(ref)
    if ds.kind != "preferences":
        raise ConfigError(f"training dataset {ds.ref} holds SFT examples, not preference pairs",
                          hint="create one from a preferences feature group: llmfti td create NAME --from PREFS_FG --model MODEL")
    rows = ds.examples(columns=["example_id", "prompt_ids", "chosen_ids", "rejected_ids", "split"])
    e = ds.lineage["encoder"]
    summary = {k: e[k] for k in ("fingerprint", "prompt_template", "prompt_template_version", "max_prompt_tokens", "max_answer_tokens")}
    info = DatasetInfo(ref=ds.ref, encoder={**summary, "training_dataset": ds.ref}, extra={"content_hash": ds.content_hash},
                       encoder_factory=ds.encoder, lineage=ds.describe())
    keys = ("prompt_ids", "chosen_ids", "rejected_ids")
    return [{"example_id": r["example_id"], **{k: [int(x) for x in r[k]] for k in keys}, "split": r["split"]} for r in rows], info
