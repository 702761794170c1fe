"""Generation settings of a deployment (part of its tuple): how many tokens, how to sample, how long."""

from __future__ import annotations

from pydantic import Field

from llmfti.config.base import StrictModel


class GenerationSettings(StrictModel):
    max_new_tokens: int = Field(128, ge=1, le=8192, description="Upper bound on generated tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy (reproducible, replayable).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass when temperature > 0.")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="A request whose generation takes longer gets 504.")
