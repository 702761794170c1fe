"""Stage timing: latency is the whole pipeline, not only `model.generate`.

    timer = StageTimer()
    with timer.stage("retrieve"):
        ...
    timer.as_ms()          # {"retrieve": 3.1, ..., "total": 12.4}
    timer.server_timing()  # 'retrieve;dur=3.1, ..., total;dur=12.4' for the Server-Timing header
"""

from __future__ import annotations

import time
from contextlib import contextmanager

STAGES = ("on_demand", "embed_query", "retrieve", "build_prompt", "generate", "log")


class StageTimer:
    def __init__(self):
        self._start = time.perf_counter()
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + (time.perf_counter() - t0)

    def total(self) -> float:
        return time.perf_counter() - self._start

    def as_ms(self) -> dict[str, float]:
        out = {k: round(v * 1000, 3) for k, v in self.stages.items()}
        out["total"] = round(self.total() * 1000, 3)
        return out

    def server_timing(self) -> str:
        return server_timing(self.as_ms())


def server_timing(timings_ms: dict[str, float]) -> str:
    """The `Server-Timing` header value for per-stage timings in milliseconds."""
    return ", ".join(f"{k};dur={v}" for k, v in timings_ms.items())
