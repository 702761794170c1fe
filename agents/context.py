"""The outermost ASGI middleware: gives each request its id (in `scope["state"]["request_id"]`, the
`X-Request-Id` response header and every error body), runs it inside `llmfti.logs.request_context`
so every log line it produces carries that id, and turns an exception nothing else handled into a
JSON 500 with the id (its traceback goes to the server log, never to the client)."""

from __future__ import annotations

import uuid

from llmfti.agents.errors import INTERNAL, send_error
from llmfti.logs import get_logger, request_context

logger = get_logger(__name__)


class RequestContext:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # Always ours, never the client's: log rows are merged on request_id, so a client-chosen id
        # could collide with another request's row.
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            await send(message)

        with request_context(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                logger.exception("unhandled error serving %s %s", scope.get("method"), scope.get("path"))
                if not started:
                    await send_error(send_with_id, scope, 500, f"{INTERNAL} (request id {request_id}; details are in the server log)", "InternalError")
                # Once the response has started there is nothing to send: the connection just ends.
