"""Thin entry points for pipelines; all logic lives in `llmfti`."""
