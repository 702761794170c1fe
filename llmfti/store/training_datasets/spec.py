"""What a training dataset is built from: `TrainingDatasetSpec`, the request of `llmfti td create`.

The spec names moving things (a feature group's latest commit, a tag, a time); creation resolves
them to fixed commit numbers and records those in the dataset's lineage, from which `recreate`
rebuilds the same examples however much data arrived since.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from llmfti.config.base import StrictModel
from llmfti.errors import ConfigError


class TrainingDatasetSpec(StrictModel):
    """One training dataset: records (questions and answers), contexts to retrieve, and the encoder."""

    name: str = Field(description="Dataset name; versions NAME:1, NAME:2, ... are allocated on create.")
    source: str = Field(description="Records feature group FG[:VERSION]: kind 'records' (question, answer, context_ids) gives "
                        "SFT examples, kind 'preferences' (question, chosen, rejected, context_ids) preference examples.")
    where: str | None = Field(None, description="A LanceDB SQL filter on the records at the pinned commit, e.g. "
                              "\"score_grounding >= 0.5 AND score_near_duplicate < 0.8\"; recorded, and applied again by recreate.")
    as_of: str | None = Field(None, description="Read the records at this commit, tag or ingestion time (default: the latest commit, pinned).")
    event_time_until: str | None = Field(None, description="Keep records whose event_time is at or before this ISO-8601 time.")
    contexts: str | None = Field(None, description="Documents feature group DOCS_FG[:VERSION][@COMMIT|TAG|TIME] to retrieve contexts from.")
    top_k: int = Field(4, ge=0, le=100, description="Contexts per example: the record's own context_ids and the best retrieved chunks.")
    context_order: Literal["retrieval", "given-first"] = Field(
        "retrieval", description="Where a record's own context stands among the contexts. 'retrieval': where the deployment's "
        "retrieval ranks it (a seeded place among the top k when retrieval misses it), so the model learns to find the answering "
        "context, as it must when serving; the answer's [n] citations are renumbered to match. 'given-first': always context [1] "
        "(datasets made before this option).")
    hybrid: bool = Field(False, description="Retrieve as a deployment with retrieval.hybrid does (use the deployment's setting).")
    on_demand: list[str] = Field(default_factory=list, description="On-demand features computed as of each record's time, as the "
                                 "deployment computes them per request (normalized_question changes the retrieval query; template slots).")
    exclude_contexts_of: list[str] = Field(default_factory=list, description="Eval suites whose cited documents are never retrieved as contexts.")
    prompt_template: str | None = Field(None, description="Prompt template name or YAML path (default: the model version's, else rag-default).")
    model: str = Field(description="Whose tokenizer encodes: a model version NAME:N, a registered base model NAME, or a model folder.")
    max_prompt_tokens: int | None = Field(None, ge=1, description="Prompt budget (default: the model version's, else 1024).")
    max_answer_tokens: int | None = Field(None, ge=2, description="Answer budget incl. EOS (default: the model version's, else 256).")
    split: float = Field(0.9, gt=0, le=1, description="Share of examples in the train split; the rest is 'eval'.")
    seed: int = Field(0, description="Seed of the split hash: the same seed puts the same record in the same split.")
    description: str = Field("", description="Free text stored with the dataset.")
    eval_suites: list[str] = Field(default_factory=list, description="Eval suites to check for overlap (questions, reference passages) with the examples.")
    refuse_eval_overlap: bool = Field(False, description="Refuse to create the dataset when an example overlaps an eval suite.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        from llmfti.store.names import NAME_RE

        if not NAME_RE.fullmatch(v) or "__" in v:
            raise ValueError(f"invalid dataset name {v!r}: letters, digits, '_', '-', '.' (max 63, no '__')")
        return v


def parse_dataset_ref(ref: str) -> tuple[str, int | None]:
    """'NAME' -> (NAME, None) meaning latest; 'NAME:3' -> (NAME, 3). The same rules as feature groups
    (the name becomes a table name)."""
    from llmfti.store.names import parse_ref

    return parse_ref(ref)


def split_contexts_ref(ref: str) -> tuple[str, str | None]:
    """'docs:1@release-1' -> ('docs:1', 'release-1'); split at the first '@' (times contain ':')."""
    fg, at, as_of = ref.partition("@")
    if at and not as_of:
        raise ConfigError(f"invalid contexts reference {ref!r}: nothing after '@' (a commit, tag or time)")
    return fg, (as_of or None)
