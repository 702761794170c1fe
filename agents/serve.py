"""Run the agent service with uvicorn, with the read timeouts uvicorn leaves out.

    from llmfti.agents.serve import run
    run(create_app(home), host="0.0.0.0", port=8000, header_timeout_s=10)

uvicorn has no timeout for reading a request's headers: a client that opens a connection and sends
half a request line is held forever, and a few thousand such clients exhaust the server's sockets
(slowloris). `HeaderTimeoutH11Protocol` closes a connection whose request headers are not complete
within `header_timeout_s` of its first byte (or of the connection opening), with a 408. The body has
its own deadline in the app (`BodyLimit`, 408 too); idle keep-alive connections keep uvicorn's
`timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
import json

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from llmfti.logs import configure_logging, get_logger

DEFAULT_HEADER_TIMEOUT_S = 10.0
logger = get_logger(__name__)

_TIMEOUT_BODY = json.dumps({"error": "the request headers did not arrive in time", "type": "RequestTimeout"}).encode()
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY
)


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request's line and headers."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_timer()  # a connection that never sends a byte is a slow client too

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # the next request on a kept-alive connection starts its own clock
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_header_timer()  # the request line and headers are complete (h11 left IDLE)

    def connection_lost(self, exc) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        logger.info("closing a connection from %s: no complete request headers within %gs", self.client, self.header_timeout_s)
        # Written raw: h11 has no request to answer yet, so it would refuse to send a response.
        self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def header_timeout_protocol(header_timeout_s: float) -> type[HeaderTimeoutH11Protocol]:
    """The protocol class for uvicorn.Config(http=...) with this header deadline."""
    if not header_timeout_s > 0:
        raise ValueError(f"header_timeout_s must be positive, got {header_timeout_s!r}")
    return type("HeaderTimeoutH11Protocol", (HeaderTimeoutH11Protocol,), {"header_timeout_s": float(header_timeout_s)})


def build_server(app, host: str = "127.0.0.1", port: int = 8000, *, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
                 log_level: str = "info", **options) -> uvicorn.Server:
    """A uvicorn.Server for `app` with the header deadline; `options` go to uvicorn.Config as they are."""
    config = uvicorn.Config(app, host=host, port=port, http=header_timeout_protocol(header_timeout_s), log_level=log_level, **options)
    return uvicorn.Server(config)


def run(app, host: str = "127.0.0.1", port: int = 8000, *, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
        log_level: str = "info", **options) -> None:
    """Serve `app` until interrupted (what `llmfti serve` runs); configures llmfti's logging first."""
    configure_logging(log_level)
    build_server(app, host, port, header_timeout_s=header_timeout_s, log_level=log_level, **options).run()
