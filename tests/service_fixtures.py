"""Shared by the service-hardening tests: reading a deployment's inference log, the server log as the
service formats it, and a generator that fails every request."""

from __future__ import annotations

import io
import logging

import pytest

from llmfti.testing.scripted_generator import ScriptedGenerator


def read_log(home, deployment: str) -> dict[str, dict]:
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    log = InferenceLog(FeatureStore(home))
    try:
        log.flush()
        return {r["request_id"]: r for r in log.query(deployment, limit=None)}
    finally:
        log.close()


@pytest.fixture
def server_log():
    """What llmfti logs, formatted as the service formats it (request id on every line)."""
    from llmfti.logs import TEXT_FORMAT, _RequestIdFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logger = logging.getLogger("llmfti")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)


class RaisingGenerator(ScriptedGenerator):
    """Fails every generation with `exc`."""

    def __init__(self, exc: Exception):
        super().__init__(["unused"])
        self.exc = exc

    def _reply(self, request):  # both generate() and stream() fail
        self.requests.append(request)
        raise self.exc
