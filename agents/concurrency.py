"""An ASGI middleware that bounds the requests generating at once (POST under /v1/: invoke and chat
completions). Over the bound a request is answered 503 with Retry-After at once, instead of queueing
behind the others until every client times out; GET routes (health, readiness, metrics, listings)
are never counted, so they answer under any load."""

from __future__ import annotations

from llmfti.agents.errors import send_error
from llmfti.logs import get_logger

DEFAULT_MAX_IN_FLIGHT = 32
RETRY_AFTER_S = 1
logger = get_logger(__name__)


class ConcurrencyLimit:
    def __init__(self, app, max_in_flight: int, prefix: str = "/v1/"):
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.app, self.max_in_flight, self.prefix = app, max_in_flight, prefix
        self.in_flight = 0  # only touched on the event loop: no lock needed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(self.prefix):
            return await self.app(scope, receive, send)
        if self.in_flight >= self.max_in_flight:
            logger.warning("refused: %d requests in flight (max_in_flight)", self.in_flight)
            return await send_error(send, scope, 503, f"the server is at its limit of {self.max_in_flight} requests in flight; retry shortly",
                                    "Overloaded", [(b"retry-after", str(RETRY_AFTER_S).encode())], close=False)
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)  # a streamed answer holds its slot until its last event
        finally:
            self.in_flight -= 1
