"""Wrappers that run llmfti as a user would (the demo and the CI eval gate): not pipelines, not installed."""
