"""Start `llmfti serve` in another process for integration tests: `--port 0 --json`, so the server
picks a free loopback port itself and announces it in its ready document (no port race)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home, env: dict | None = None, timeout: float = 120.0, args: tuple[str, ...] = ()):
    # stderr goes to a file: an undrained pipe would block a server that logs a lot.
    log = tempfile.NamedTemporaryFile("w+", prefix="llmfti-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmfti", "--home", str(home), "serve", "--port", "0", "--json", *args],
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, stdout=subprocess.PIPE, stderr=log, text=True,
    )
    proc.log_path = log.name
    line = proc.stdout.readline()  # the ready document, once uvicorn listens
    if not line:
        proc.wait(timeout=30)
        raise RuntimeError(f"server exited: {open(log.name).read()[-3000:]}")
    url = json.loads(line)["url"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {open(log.name).read()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready")
