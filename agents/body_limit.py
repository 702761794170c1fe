"""An ASGI middleware that caps request bodies by counting bytes as they arrive, so a chunked body
(no Content-Length header) cannot slip past the limit. Bodies under the cap are buffered (they are
small by definition) and replayed to the app."""

from __future__ import annotations

import json


class BodyLimit:
    def __init__(self, app, max_bytes: int, prefix: str = "/v1/"):
        self.app, self.max_bytes, self.prefix = app, max_bytes, prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix) or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _too_large(send, self.max_bytes)
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


async def _too_large(send, limit: int) -> None:
    payload = json.dumps({"error": f"request body exceeds the limit of {limit} bytes", "type": "PayloadTooLarge"}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
