"""The service's hot swap: `DeploymentManager` holds the active runtime per deployment name and
swaps it when `llmfti deploy` or `llmfti rollback` records a new active version, polling the
deployment events. A request keeps the runtime it started with, so in-flight requests finish on
their own tuple; a version that fails to load leaves the previous one serving.
"""

from __future__ import annotations

import threading

from llmfti.background import Periodic
from llmfti.errors import NotFoundError
from llmfti.pipelines.inference.runtime import DeploymentRuntime, RuntimeCache, build_runtime


class DeploymentManager:
    """Active deployments of a project home; `refresh()` picks up deploys and rollbacks."""

    def __init__(self, home, *, poll_interval_s: float = 1.0, generator_override=None):
        from llmfti.registry.deployments import DeploymentStore

        self.home = home
        self.store = DeploymentStore(home)
        self.cache = RuntimeCache()
        self.poll_interval_s = poll_interval_s
        self.generator_override = generator_override
        self._active: dict[str, DeploymentRuntime] = {}
        self._errors: dict[str, str] = {}
        self._seen_events = None
        self._lock = threading.Lock()
        self._poller = Periodic(self.refresh, poll_interval_s, "llmfti-deployments", self._refresh_failed)

    def refresh(self) -> None:
        marker = self.store.events_marker()
        if marker == self._seen_events and not self._errors:
            return  # nothing new, and nothing that failed to load waits for a retry
        for record in self.store.list_active():
            current = self._active.get(record["name"])
            if current is not None and current.version == record["version"]:
                self._errors.pop(record["name"], None)  # e.g. rolled back to the version still loaded
                continue
            try:
                runtime = build_runtime(self.home, record, self.cache, self.generator_override)
            except Exception as exc:  # keep serving the previous tuple; report the failure on /readyz
                self._errors[record["name"]] = f"version {record['version']}: {exc}"
                continue
            with self._lock:
                self._active[record["name"]] = runtime  # atomic swap: new requests get the new tuple
            self._errors.pop(record["name"], None)
        self._errors.pop("_refresh", None)
        self._seen_events = marker

    def start(self) -> "DeploymentManager":
        self.refresh()
        self._poller.start()
        return self

    def _refresh_failed(self, exc: Exception) -> None:
        self._errors["_refresh"] = str(exc)  # the store may be mid-write; the next tick retries

    def stop(self) -> None:
        self._poller.stop(timeout_s=5)

    def get(self, name: str) -> DeploymentRuntime:
        with self._lock:
            runtime = self._active.get(name)
        if runtime is None:
            raise NotFoundError(f"deployment {name!r} is not deployed" + (f" ({self._errors[name]})" if name in self._errors else ""))
        return runtime

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._active)

    def status(self) -> dict:
        with self._lock:
            return {"active": {n: r.version for n, r in self._active.items()}, "errors": dict(self._errors)}
