"""Config of a feature pipeline run: which embedder, which chunker, which scorers (records), and the
validation limits."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from llmfti.config.base import StrictModel


class EmbedderConfig(StrictModel):
    """The model that turns chunks into vectors (model-independent transformation)."""

    model: str = Field(
        "all-MiniLM-L6-v2",
        description="Embedder: 'all-MiniLM-L6-v2' (embedded default), a local folder, a Hugging Face id, "
        "or 'hash-<dim>' (the deterministic test embedder).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Compute dtype. 'auto' picks bfloat16 on CUDA or on CPUs with native bf16, else float32. "
        "The choice is resolved once when a feature-group version is created and then pinned.",
    )
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'. Not part of the fingerprint.")
    batch_size: int = Field(64, ge=1, le=4096, description="Chunks per encode batch.")


class ChunkerConfig(StrictModel):
    """Token-aware chunking with the embedder's tokenizer (model-independent transformation)."""

    name: str = Field("structured", description="A registered chunker (see llmfti.transforms.register_chunker).")
    chunk_tokens: int = Field(192, ge=16, le=8192, description="Maximum tokens per chunk (body, without heading).")
    overlap: int = Field(32, ge=0, description="Tokens of trailing context repeated at the start of the next chunk.")

    @model_validator(mode="after")
    def _overlap_smaller_than_chunk(self):
        if self.overlap >= self.chunk_tokens:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than chunk_tokens ({self.chunk_tokens})")
        return self


class ScorerSpec(StrictModel):
    """One registered scorer (see llmfti.transforms.scoring) and its parameters; its column is `score_<name>`."""

    name: str = Field(..., min_length=1, description="A registered scorer: length, language, near_duplicate, grounding, eval_question, judge, or your own.")
    params: dict = Field(default_factory=dict, description="Scorer parameters, e.g. {suites: [python-reference]} for eval_question.")


class FeatureConfig(StrictModel):
    """One feature pipeline: `llmfti ingest ... --config configs/features/NAME.yaml`."""

    kind: Literal["documents", "records", "preferences"] = Field(
        "documents", description="Documents are chunked; records (question, answer) and preferences (prompt, chosen, rejected) are kept whole.")
    description: str = Field("", description="Free text stored in the feature group's metadata.")
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    chunker: ChunkerConfig = Field(default_factory=ChunkerConfig)
    max_file_bytes: int = Field(20_000_000, ge=1, description="Larger files are quarantined as over-size.")
    index_threshold: int = Field(
        20_000, ge=1, description="Build an ANN vector index once the table has this many rows; exact search below."
    )
    scorers: list[ScorerSpec] = Field(
        default_factory=list,
        description="Records only: scorers run on every ingested record, in the same commit (columns score_<name>). "
        "A group scored with `llmfti records score` keeps scoring new records with those scorers without this list.",
    )

    @field_validator("scorers", mode="before")
    @classmethod
    def _names_as_specs(cls, v):
        # `scorers: [length, language]` is the short form of `[{name: length}, {name: language}]`.
        return [{"name": x} if isinstance(x, str) else x for x in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _scorers_need_records(self):
        if self.scorers and self.kind != "records":
            raise ValueError(f"scorers apply to records feature groups, not {self.kind}")
        names = [s.name for s in self.scorers]
        if len(set(names)) != len(names):
            raise ValueError(f"a scorer is listed twice: {names}")
        return self
