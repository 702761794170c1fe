"""Logging: one configuration for every llmfti process (stdlib `logging`, to stderr), with the request
id on every line a request produces.

    from llmfti.logs import configure_logging, get_logger, request_context
    configure_logging("info")                      # the CLI and `llmfti serve` call this once
    log = get_logger(__name__)
    with request_context("4f3a..."):
        log.info("retrieved %d chunks", 4)         # ... [req=4f3a...] retrieved 4 chunks

Levels: LLMFTI_LOG_LEVEL (debug, info, warning, error; default warning for the CLI, info for serve).
`LLMFTI_LOG_FORMAT=json` writes one JSON object per line (for log shippers).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from contextlib import contextmanager

_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("llmfti_request_id", default="-")
ROOT = "llmfti"


class _RequestIdFilter(logging.Filter):
    """Stamps every record with the request id of the context it was logged in ('-' outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _REQUEST_ID.get()
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [req=%(request_id)s] %(message)s"


def configure_logging(level: str | int | None = None, *, fmt: str | None = None, stream=None) -> logging.Logger:
    """Configure the `llmfti` logger once per process (idempotent: a second call only changes the level)."""
    level = level or os.environ.get("LLMFTI_LOG_LEVEL") or "warning"
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            level = logging.WARNING
    logger = logging.getLogger(ROOT)
    logger.setLevel(level)
    if not any(getattr(h, "_llmfti", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler._llmfti = True  # type: ignore[attr-defined]
        handler.addFilter(_RequestIdFilter())
        use_json = (fmt or os.environ.get("LLMFTI_LOG_FORMAT", "text")).lower() == "json"
        handler.setFormatter(_JsonFormatter() if use_json else logging.Formatter(TEXT_FORMAT))
        logger.addHandler(handler)
        logger.propagate = False  # one line per event, even when the host app configured the root logger
    return logger


def get_logger(name: str) -> logging.Logger:
    """A logger under `llmfti` (module names already are: llmfti.pipelines.feature, ...)."""
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")


@contextmanager
def request_context(request_id: str):
    """Log lines inside the block (in this thread or task) carry `request_id`."""
    token = _REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        _REQUEST_ID.reset(token)


def current_request_id() -> str:
    return _REQUEST_ID.get()
