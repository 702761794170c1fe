"""Slow clients and broken versions cannot hold the service: a connection that never completes its
headers is closed (uvicorn runner `llmfti.agents.serve`), a stalled body gets 408, and a deployment
version that fails to load is retried with exponential backoff, not on every poll tick."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from agent_fixtures import agent_home, deploy  # noqa: F401 (fixture)
from server_process import free_port


@pytest.fixture(scope="module")
def server(agent_home):
    """The app on a real uvicorn server (the service's runner) in a thread: 1 s header and body deadlines."""
    from llmfti.agents.app import create_app
    from llmfti.agents.serve import build_server

    app = create_app(agent_home, api_keys=set(), body_timeout_s=1.0)
    port = free_port()
    srv = build_server(app, port=port, header_timeout_s=1.0, log_level="warning", lifespan="off")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    yield port
    srv.should_exit = True
    thread.join(timeout=10)


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    sock.settimeout(limit_s)
    t0, data = time.perf_counter(), b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except socket.timeout:
        pytest.fail(f"the server kept the connection open for {limit_s}s; received {data!r}")
    return data, time.perf_counter() - t0


def test_half_sent_headers_are_disconnected(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # ...and never the rest
        data, took = read_until_closed(sock, 10)
    assert took < 5 and data.startswith(b"HTTP/1.1 408"), data
    assert json.loads(data.split(b"\r\n\r\n", 1)[1])["type"] == "RequestTimeout"
    with socket.create_connection(("127.0.0.1", server)) as sock:  # a silent connection too
        data, took = read_until_closed(sock, 10)
    assert took < 5


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one response on a kept-alive connection (Content-Length framed)."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def test_complete_requests_are_unaffected_and_keep_alive_works(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        for _ in range(2):  # two requests on one connection, idle longer than the header deadline between them
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["status"] == "ok", head
            time.sleep(1.5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # the next request on that connection has its own deadline
        data, took = read_until_closed(sock, 10)
    assert data.startswith(b"HTTP/1.1 408") and took < 5


def test_a_stalled_body_gets_408(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"POST /v1/deployments/none/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"question\": ")  # 13 of 100 bytes, then nothing
        data, took = read_until_closed(sock, 10)
    assert data.startswith(b"HTTP/1.1 408"), data
    assert took < 5
    head, body = data.split(b"\r\n\r\n", 1)
    payload = json.loads(body)
    assert payload["type"] == "RequestTimeout" and payload["request_id"] and payload["request_id"].encode() in head  # X-Request-Id


def test_failed_builds_are_retried_with_exponential_backoff(agent_home, tmp_path, monkeypatch):
    from llmfti.agents import manager as manager_module
    from llmfti.agents.manager import DeploymentManager
    from llmfti.testing.scripted_generator import ScriptedGenerator

    deploy(agent_home, tmp_path, name="flaky")
    real = manager_module.build_runtime
    attempts: list[tuple[float, int]] = []
    broken = {"flaky"}
    now = [0.0]

    def build(home, record, *args, **kwargs):
        if record["name"] in broken:
            attempts.append((now[0], int(record["version"])))
            raise OSError("weights missing")
        return real(home, record, *args, **kwargs)

    monkeypatch.setattr(manager_module, "build_runtime", build)
    manager = DeploymentManager(agent_home, generator_override=ScriptedGenerator(["ok"]), clock=lambda: now[0])
    while now[0] <= 20:  # a poll tick every 0.5 s for 20 s
        manager.refresh()
        now[0] += 0.5
    assert [t for t, _ in attempts] == [0.0, 1.0, 3.0, 7.0, 15.0]  # 1, 2, 4, 8 s apart: not 41 attempts
    assert "next try in" in manager.status()["errors"]["flaky"] and "weights missing" not in json.dumps(manager.status())
    assert manager.failures()["flaky"]["error"] == "OSError: weights missing"

    second = deploy(agent_home, tmp_path, name="flaky", retrieval={"k": 1})  # a new version is tried at once
    manager.refresh()
    assert attempts[-1] == (now[0], second["version"])
    now[0] += 0.5
    manager.refresh()
    assert len([a for a in attempts if a[1] == second["version"]]) == 1  # and then backs off too

    broken.clear()  # fixed: loads at its next retry
    now[0] += 1.0
    manager.refresh()
    assert manager.get("flaky").version == second["version"] and "flaky" not in manager.status()["errors"]


def test_backoff_is_capped(agent_home):
    from llmfti.agents.manager import DeploymentManager

    manager = DeploymentManager(agent_home, clock=lambda: 0.0, backoff_start_s=1.0, backoff_max_s=60.0)
    failure = None
    for _ in range(10):
        manager._record_failure("x", 1, RuntimeError("no"), failure, 0.0)
        failure = manager._failures["x"]
    assert failure.attempts == 10 and failure.retry_at == 60.0
