"""API keys of the agent service, and the guard that checks them.

    LLMFTI_API_KEYS=key1,key2          comma-separated
    LLMFTI_API_KEYS_FILE=/run/keys     one key per line; blank lines and '#' comments (indented too) ignored

With keys, `/v1/...` needs `Authorization: Bearer KEY` (401 otherwise); with `protect_docs`,
`/docs`, `/redoc`, `/openapi.json` and `/metrics` too. The service fails closed: a key source that is
configured but holds no key (an empty or comment-only file, `LLMFTI_API_KEYS=" , "`) is a
configuration error, never a server without auth. Keys are compared in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from llmfti.agents.errors import send_error
from llmfti.errors import ConfigError

KEYS_ENV = "LLMFTI_API_KEYS"
KEYS_FILE_ENV = "LLMFTI_API_KEYS_FILE"
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/metrics")


def parse_keys_file(text: str) -> set[str]:
    """Keys of a keys file: each line stripped first, so an indented '#' line is a comment, not a key."""
    return {line for line in (raw.strip() for raw in text.splitlines()) if line and not line.startswith("#")}


def load_api_keys(env=None) -> set[str]:
    """The configured keys; an empty set when no key source is configured (auth off, the default for
    a server on loopback). Raises ConfigError for a configured source without a key."""
    env = os.environ if env is None else env
    keys: set[str] = set()
    if KEYS_ENV in env:
        from_env = {k.strip() for k in env[KEYS_ENV].split(",") if k.strip()}
        if not from_env:
            raise ConfigError(f"{KEYS_ENV} is set but holds no API key: refusing to serve without auth "
                              f"(set it to KEY1,KEY2, or unset it to serve without keys)")
        keys |= from_env
    if KEYS_FILE_ENV in env:
        path = env[KEYS_FILE_ENV]
        if not path.strip():
            raise ConfigError(f"{KEYS_FILE_ENV} is set but empty: name a file with one API key per line, or unset it")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {KEYS_FILE_ENV} {path}: {getattr(exc, 'strerror', None) or exc}") from None
        from_file = parse_keys_file(text)
        if not from_file:
            raise ConfigError(f"{KEYS_FILE_ENV} {path} holds no API key (only blank or '#' lines): refusing to serve without auth")
        keys |= from_file
    return keys


def clean_keys(keys) -> set[str]:
    """Keys given in code: stripped, empty ones dropped. A non-empty collection that holds no key is a
    mistake, not a request for no auth (pass an empty set for that)."""
    cleaned = {str(k).strip() for k in keys if str(k).strip()}
    if keys and not cleaned:
        raise ConfigError("api_keys holds only empty keys: refusing to serve without auth (pass an empty set for no auth)")
    return cleaned


def _digest(key: str) -> bytes:
    # Fixed-length digests: compare_digest then takes the same time whatever the lengths involved.
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyChecker:
    def __init__(self, keys: set[str]):
        self._digests = [_digest(k) for k in keys]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def valid(self, presented: str) -> bool:
        """Constant time: every key is compared (no early exit reveals which one matched)."""
        candidate = _digest(presented)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched


class AuthGuard:
    """ASGI middleware: 401 for protected paths without a valid bearer key (before the body is read)."""

    def __init__(self, app, keys: set[str], protect_docs: bool = False):
        self.app, self.checker, self.protect_docs = app, KeyChecker(keys), protect_docs

    def protected(self, path: str) -> bool:
        if path.startswith("/v1/"):
            return True
        return self.protect_docs and (path.rstrip("/") in DOCS_PATHS or path.startswith("/docs/"))

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.checker and self.protected(scope["path"]):
            auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not self.checker.valid(token.strip()):
                return await send_error(send, scope, 401, "missing or invalid API key", "Unauthorized", [(b"www-authenticate", b"Bearer")])
        await self.app(scope, receive, send)
