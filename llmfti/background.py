"""A periodic background task on a daemon thread: the deployment poller and the inference-log
flusher both run one. A failing tick is reported to `on_error` and retried on the next one."""

from __future__ import annotations

import threading
from typing import Callable


class Periodic:
    def __init__(self, fn: Callable[[], object], interval_s: float, name: str, on_error: Callable[[Exception], None]):
        self.fn, self.interval_s, self.name, self.on_error = fn, interval_s, name, on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.fn()
            except Exception as exc:  # the next tick retries; the owner decides how to report
                self.on_error(exc)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None
