"""The service's hot swap: `DeploymentManager` holds the active runtime per deployment name and
swaps it when `llmfti deploy` or `llmfti rollback` records a new active version, polling the
deployment events. A request keeps the runtime it started with, so in-flight requests finish on
their own tuple; a version that fails to load leaves the previous one serving.

A version that fails to load is retried with exponential backoff (1 s doubling to 60 s, per
deployment version): loading a model is expensive, and a broken version retried on every poll tick
would keep a core busy and the log full. A new deploy of that name is tried at once. Build errors
go to the server log; `status()` (shown on /readyz) only says which version failed and when it is
retried, since the errors carry file paths.

The rollback target stays warm: for each active deployment, the runtime of the version `llmfti
rollback` would switch to (the newest earlier version that was active) is kept loaded, usually the
runtime just swapped out, so a rollback swaps back at once instead of loading a model while users
wait. The shared `RuntimeCache` is bounded (LRU); the generators and embedders of active and warm
runtimes are pinned in it, everything else may be evicted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from llmfti.background import Periodic
from llmfti.errors import LlmftiError, NotFoundError


class DeploymentUnavailable(LlmftiError):
    """The deployment exists but its active version could not be loaded (HTTP 503; the manager retries)."""

    exit_code = 8
from llmfti.logs import get_logger
from llmfti.pipelines.inference.runtime import DeploymentRuntime, RuntimeCache, build_runtime

logger = get_logger(__name__)
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 60.0


@dataclass
class _Failure:
    version: int
    error: str
    attempts: int
    retry_at: float  # on the manager's clock


class DeploymentManager:
    """Active deployments of a project home; `refresh()` picks up deploys and rollbacks."""

    def __init__(self, home, *, poll_interval_s: float = 1.0, generator_override=None, clock=time.monotonic,
                 backoff_start_s: float = BACKOFF_START_S, backoff_max_s: float = BACKOFF_MAX_S):
        from llmfti.registry.deployments import DeploymentStore

        self.home = home
        self.store = DeploymentStore(home)
        self.cache = RuntimeCache()
        self.poll_interval_s = poll_interval_s
        self.generator_override = generator_override
        self.clock = clock
        self.backoff_start_s, self.backoff_max_s = backoff_start_s, backoff_max_s
        self._active: dict[str, DeploymentRuntime] = {}
        self._warm: dict[str, DeploymentRuntime] = {}  # per name: the rollback target's runtime
        self._failures: dict[str, _Failure] = {}
        self._refresh_error: str | None = None
        self._seen_events = None
        self._lock = threading.Lock()
        self._poller = Periodic(self.refresh, poll_interval_s, "llmfti-deployments", self._refresh_failed)

    def refresh(self) -> None:
        marker = self.store.events_marker()
        now = self.clock()
        if marker == self._seen_events and not any(f.retry_at <= now for f in self._failures.values()):
            return  # nothing new, and no failed version is due for a retry
        with self.cache.hold():  # what this refresh loads stays until it has pinned what it keeps
            self._refresh(marker, now)

    def _refresh(self, marker, now: float) -> None:
        for record in self.store.list_active():
            name, version = record["name"], int(record["version"])
            current = self._active.get(name)
            if current is not None and current.version == version:
                self._failures.pop(name, None)  # e.g. rolled back to the version still loaded
                continue
            failure = self._failures.get(name)
            if failure is not None and failure.version == version and failure.retry_at > now:
                continue  # backing off: this version failed recently
            warm = self._warm.get(name)
            try:
                # A rollback to the warm version swaps back without loading anything.
                runtime = warm if warm is not None and warm.version == version else build_runtime(self.home, record, self.cache, self.generator_override)
            except Exception as exc:  # keep serving the previous tuple; retry later
                self._record_failure(name, version, exc, failure if failure is not None and failure.version == version else None, now)
                continue
            with self._lock:
                self._active[name] = runtime  # atomic swap: new requests get the new tuple
            if current is not None:
                self._warm[name] = current  # the version just swapped out: the likely rollback target
            if failure is not None:
                logger.info("deployment %s version %d loaded after %d failed attempt(s)", name, version, failure.attempts)
            self._failures.pop(name, None)
        self._keep_rollback_targets_warm()
        self._refresh_error = None
        self._seen_events = marker

    def _keep_rollback_targets_warm(self) -> None:
        """Per active deployment, keep the runtime of its rollback target loaded (building it when the
        runtime swapped out is not that version), drop the others, and pin what active and warm
        runtimes use in the bounded cache."""
        with self._lock:
            active = dict(self._active)
        for name, runtime in active.items():
            target = self._rollback_target(name, runtime.version)
            warm = self._warm.get(name)
            if target is None:
                self._warm.pop(name, None)
            elif warm is None or warm.version != target:
                try:
                    self._warm[name] = build_runtime(self.home, self.store.get(name, target), self.cache, self.generator_override)
                except Exception as exc:  # serving is unaffected; a rollback would load it then
                    self._warm.pop(name, None)
                    logger.warning("deployment %s: rollback target version %d could not be kept warm: %s", name, target, exc)
        for name in set(self._warm) - set(active):
            self._warm.pop(name)
        self.cache.pin({k for r in list(active.values()) + list(self._warm.values()) for k in r.cache_keys})

    def _rollback_target(self, name: str, active: int) -> int | None:
        """The version `DeploymentStore.rollback(name)` would activate: the newest earlier version that was active."""
        from llmfti.registry.deployments import ACTIVATING

        earlier = sorted({h["version"] for h in self.store.history(name) if h["action"] in ACTIVATING and h["version"] < active})
        return earlier[-1] if earlier else None

    def warm_versions(self) -> dict[str, int]:
        """Per deployment, the version kept loaded for a rollback (observability, tests)."""
        return {n: r.version for n, r in self._warm.items()}

    def _record_failure(self, name: str, version: int, exc: Exception, previous: _Failure | None, now: float) -> None:
        attempts = previous.attempts + 1 if previous else 1
        delay = min(self.backoff_max_s, self.backoff_start_s * 2 ** (attempts - 1))
        self._failures[name] = _Failure(version, f"{type(exc).__name__}: {exc}", attempts, now + delay)
        logger.error("deployment %s version %d failed to load (attempt %d; next try in %gs)", name, version, attempts, delay, exc_info=exc)

    def start(self) -> "DeploymentManager":
        self.refresh()
        self._poller.start()
        return self

    def _refresh_failed(self, exc: Exception) -> None:
        # The store may be mid-write; the next tick retries.
        self._refresh_error = str(exc)
        logger.warning("reading the deployment events failed (retrying next tick): %s", exc)

    def stop(self) -> None:
        self._poller.stop(timeout_s=5)

    def get(self, name: str) -> DeploymentRuntime:
        with self._lock:
            runtime = self._active.get(name)
        if runtime is None:
            failure = self._failures.get(name)
            # The build error stays in the server log: it names files on the server.
            extra = f" (its version {failure.version} failed to load)" if failure is not None else ""
            if failure is not None:
                raise DeploymentUnavailable(f"deployment {name!r} is not serving: its version {failure.version} failed to load "
                                            "(it is retried; details are in the server log)")
            raise NotFoundError(f"deployment {name!r} is not deployed{extra}")
        return runtime

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._active)

    def failures(self) -> dict[str, dict]:
        """The failing versions with their errors (for operators and tests; not for clients)."""
        return {n: {"version": f.version, "error": f.error, "attempts": f.attempts, "retry_at": f.retry_at} for n, f in self._failures.items()}

    def status(self) -> dict:
        """What /readyz shows: active versions, and for failing ones only what failed and when it is
        retried (the errors themselves are in the server log)."""
        now = self.clock()
        with self._lock:
            active = {n: r.version for n, r in self._active.items()}
        errors = {n: f"version {f.version} failed to load ({f.attempts} attempt(s); next try in {max(0.0, f.retry_at - now):.0f}s; details in the server log)"
                  for n, f in list(self._failures.items())}
        if self._refresh_error is not None:
            errors["_refresh"] = "reading the deployment events failed; retrying (details in the server log)"
        return {"active": active, "errors": errors}
