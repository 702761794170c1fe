"""Prometheus metrics of the agent service: per-stage latency histograms, requests, errors, tokens.

A private CollectorRegistry per app keeps test apps independent of each other.
"""

from __future__ import annotations

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServiceMetrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.stage_seconds = Histogram(
            "llmfti_stage_seconds", "Latency of each inference pipeline stage", ["deployment", "stage"], buckets=BUCKETS, registry=self.registry
        )
        self.requests = Counter("llmfti_requests_total", "Requests by deployment and status", ["deployment", "status"], registry=self.registry)
        self.errors = Counter("llmfti_errors_total", "Failed requests by deployment and error type", ["deployment", "error"], registry=self.registry)
        self.tokens = Counter("llmfti_tokens_total", "Prompt and completion tokens", ["deployment", "kind"], registry=self.registry)

    def observe(self, deployment: str, timings_ms: dict[str, float], status: str, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        for stage, ms in timings_ms.items():
            self.stage_seconds.labels(deployment, stage).observe(ms / 1000.0)
        self.requests.labels(deployment, status).inc()
        if prompt_tokens:
            self.tokens.labels(deployment, "prompt").inc(prompt_tokens)
        if completion_tokens:
            self.tokens.labels(deployment, "completion").inc(completion_tokens)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
