"""Errors that llmfti raises on purpose: each carries a message for humans and a CLI exit code."""

from __future__ import annotations


class LlmftiError(Exception):
    """A user-facing error: the CLI prints the message (no traceback) and exits with `exit_code`."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def to_dict(self) -> dict:
        out = {"error": str(self), "type": type(self).__name__}
        if self.hint:
            out["hint"] = self.hint
        return out


class ConfigError(LlmftiError):
    """A config file, option or reference is invalid."""

    exit_code = 2


class NotFoundError(LlmftiError):
    """A feature group, version, commit, tag or model does not exist."""

    exit_code = 3


class IncompatibleError(LlmftiError):
    """Two things that must match do not (embedder, chunker, fingerprint)."""

    exit_code = 4


class QuarantineError(LlmftiError):
    """Raised with --fail-on-quarantine when a run quarantined input."""

    exit_code = 5
