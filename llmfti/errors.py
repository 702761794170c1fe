"""Errors that llmfti raises on purpose: each carries a message for humans and a CLI exit code.

`EXIT_CODES` is THE table of the CLI's exit codes (the README prints it; a test checks that every
error class uses a code from it with the meaning it says)."""

from __future__ import annotations

EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "a check did not pass (eval gate failed, replay differs, monitor alert) or an unexpected error",
    2: "bad config, option, reference or input value (usage error)",
    3: "not found: feature group, version, commit, tag, model, deployment, dataset, suite",
    4: "incompatible: embedder, chunker or fingerprint mismatch; changed artifacts; no passing eval for a promotion",
    5: "input quarantined, with --fail-on-quarantine",
    6: "a training guard failed (the adapter changes nothing, the model never emits EOS)",
    7: "generation did not finish within its timeout",
    8: "generation failed: the backend (an OpenAI-compatible server) failed or is unreachable, or the model never finished its tool calls",
    130: "interrupted (Ctrl-C)",
}


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
