"""What a client sees when a request fails, and what the server log keeps.

Every error body is `{"error": message, "type": name, "request_id": id}` (plus `detail` for invalid
requests). Client errors (4xx) say what was wrong with the request. Server-side failures (5xx) get a
fixed message per kind: their own text can carry a backend URL, an upstream body, file paths or a
search engine's internals, so that text goes to the server log with the request id, never to the
client. Unexpected exceptions are logged with their traceback.
"""

from __future__ import annotations

import json

from llmfti.agents.manager import DeploymentUnavailable
from llmfti.errors import ConfigError, LlmftiError, NotFoundError
from llmfti.logs import get_logger
from llmfti.models.generation import BackendUnavailable, GenerationTimeout
from llmfti.pipelines.inference import online as pipeline

logger = get_logger("llmfti.agents")

# Server-side failures: what the client reads instead of the exception's own text.
PUBLIC_5XX = {
    GenerationTimeout: "generation did not finish within the deployment's timeout",
    BackendUnavailable: "the generation backend failed or is unreachable",
    pipeline.ResponseUnencodable: "the answer could not be encoded as JSON",
}
# 5xx errors whose message we compose ourselves from the deployment's settings: safe to show.
SAFE_5XX = (pipeline.ToolBudgetExhausted, DeploymentUnavailable)
INTERNAL = "internal server error"


def error_status(exc: Exception) -> int:
    if isinstance(exc, pipeline.RequestInvalid):
        return 422
    if isinstance(exc, DeploymentUnavailable):
        return 503
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, GenerationTimeout):
        return 504
    if isinstance(exc, (BackendUnavailable, pipeline.ToolBudgetExhausted)):
        return 502
    if isinstance(exc, pipeline.ResponseUnencodable):
        return 500
    if isinstance(exc, ConfigError):
        return 422
    if isinstance(exc, LlmftiError):
        return 409
    return 500


def error_body(exc: Exception, request_id: str | None) -> tuple[int, dict]:
    """(status, body) for `exc`; logs the details of server-side failures (call it where the request
    context is active, so the log line carries the request id)."""
    status = error_status(exc)
    if not isinstance(exc, LlmftiError):
        logger.error("unexpected %s while serving the request", type(exc).__name__, exc_info=exc)
        return status, _body(INTERNAL, "InternalError", request_id)
    if status >= 500 and not isinstance(exc, SAFE_5XX):
        logger.error("%s: %s", type(exc).__name__, exc)
        message = next((m for t, m in PUBLIC_5XX.items() if isinstance(exc, t)), INTERNAL)
        return status, _body(f"{message} (request id {request_id}; details are in the server log)", type(exc).__name__, request_id)
    if status >= 500:
        logger.error("%s: %s", type(exc).__name__, exc)
    else:
        logger.info("request refused (%d %s): %s", status, type(exc).__name__, exc)
    body = _body(str(exc), type(exc).__name__, request_id)
    if isinstance(exc, pipeline.RequestInvalid):
        body["detail"] = exc.errors
    return status, body


def _body(message: str, type_: str, request_id: str | None) -> dict:
    body = {"error": message, "type": type_}
    if request_id:
        body["request_id"] = request_id
    return body


def request_id_of(scope) -> str | None:
    """The id `RequestContext` gave this request."""
    return (scope.get("state") or {}).get("request_id")


async def send_error(send, scope, status: int, message: str, type_: str, headers: list[tuple[bytes, bytes]] | None = None, *, close: bool = True) -> None:
    """A JSON error from an ASGI middleware (before any route runs). `close` (default) ends the
    connection after it: the request body may be unread, so the connection cannot carry another request."""
    payload = json.dumps(_body(message, type_, request_id_of(scope))).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *(headers or [])]
    if close:
        head.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": payload})


# The error body every route returns (error_body above) and its statuses, as OpenAPI documents them.
ERROR_SCHEMA = {"type": "object", "required": ["error", "type"], "properties": {
    "error": {"type": "string"}, "type": {"type": "string"}, "request_id": {"type": "string"},
    "detail": {"type": "array", "items": {"type": "object", "required": ["loc", "msg", "type"], "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}, "msg": {"type": "string"},
        "type": {"type": "string"}}}}}}
ERROR_RESPONSES = {code: {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}} for code, text in {
    404: "no such deployment", 422: "invalid request", 502: "backend failure or tool budget exhausted",
    503: "too many requests in flight, or the deployment is unavailable", 504: "generation timeout"}.items()}
