"""An ASGI middleware that caps request bodies by counting bytes as they arrive, so a chunked body
(no Content-Length header) cannot slip past the limit, and gives the whole body a deadline, so a
client that stalls mid-body is answered 408 instead of holding its connection (and a slot) forever.
Bodies under the cap are buffered (they are small by definition) and replayed to the app."""

from __future__ import annotations

import anyio

from llmfti.agents.errors import send_error
from llmfti.logs import get_logger

DEFAULT_BODY_TIMEOUT_S = 30.0
logger = get_logger(__name__)


class BodyLimit:
    def __init__(self, app, max_bytes: int, prefix: str = "/v1/", timeout_s: float = DEFAULT_BODY_TIMEOUT_S):
        self.app, self.max_bytes, self.prefix, self.timeout_s = app, max_bytes, prefix, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix) or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        chunks, size = [], 0
        # One deadline for the whole body, not per chunk: a byte every few seconds must not keep it alive.
        deadline = anyio.current_time() + self.timeout_s
        while True:
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())) as waited:
                message = await receive()
            if waited.cancelled_caught:
                logger.info("request body incomplete after %gs (%d bytes received): 408", self.timeout_s, size)
                return await send_error(send, scope, 408, f"the request body did not arrive within {self.timeout_s:g}s", "RequestTimeout")
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await send_error(send, scope, 413, f"request body exceeds the limit of {self.max_bytes} bytes", "PayloadTooLarge")
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # afterwards: disconnect notifications, as usual

        await self.app(scope, replay, send)
