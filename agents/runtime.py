"""Loaded deployments, hot-swapped without restart.

A `DeploymentRuntime` is immutable: one deployment version's model, encoder, generator, embedder
and feature-group tables. The `DeploymentManager` holds the active runtime per name and swaps it
when `llmfti deploy` or `llmfti rollback` records a new active version; a request keeps the runtime
it started with, so in-flight requests finish on their own tuple. Models and embedders are cached
by identity, so a rollback to a tuple seen before is instant.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from llmfti.background import Periodic
from llmfti.config.deployments import DeploymentConfig, request_model
from llmfti.errors import NotFoundError


@dataclass
class DeploymentRuntime:
    record: dict
    config: DeploymentConfig
    encoder: object
    generator: object
    fg: object | None = None
    embedder: object | None = None
    tables: object | None = None
    request_model: type | None = None
    model_info: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def version(self) -> int:
        return int(self.record["version"])

    def commit_for_request(self) -> int | None:
        """The pinned commit, or the latest one at the time the request starts."""
        if self.tables is None:
            return None
        pinned = self.record.get("commit")
        return int(pinned) if pinned not in (None, "latest") else self.tables.latest_commit()


class RuntimeCache:
    """Generators and embedders shared across deployment versions (keyed by what makes them)."""

    def __init__(self):
        self._items: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, build):
        with self._lock:
            if key not in self._items:
                self._items[key] = build()
            return self._items[key]


def build_runtime(home, record: dict, cache: RuntimeCache, generator_override=None) -> DeploymentRuntime:
    from llmfti.registry import ModelRegistry

    config = DeploymentConfig.model_validate(record["config"])
    registry = ModelRegistry(home)
    encoder = registry.load_encoder(config.model, template=config.prompt_template, max_prompt_tokens=config.max_prompt_tokens)
    backend = config.backend
    if generator_override is not None:
        generator = generator_override
    elif backend.kind == "openai":
        from llmfti.models.openai_generator import OpenAIGenerator

        generator = cache.get(("openai", backend.base_url, backend.model, backend.api_key_env), lambda: OpenAIGenerator(backend.base_url, backend.model, backend.api_key_env))
    else:
        # Everything that shapes the generator is in the key: a new version changing the batching gets its own.
        key = ("transformers", config.model, backend.device, backend.dtype, backend.max_batch_size, backend.batch_window_ms)
        generator = cache.get(key, lambda: _transformers_generator(registry, config))
    generator.warm_up()
    runtime = DeploymentRuntime(record=record, config=config, encoder=encoder, generator=generator, request_model=request_model(config))
    runtime.model_info = {"model": config.model, "backend": backend.kind}
    if config.feature_group:
        from agents.retrieval import PinnedTables
        from llmfti.store import FeatureStore

        fg = FeatureStore(home).feature_group(config.feature_group)
        runtime.fg = fg
        runtime.embedder = cache.get(("embedder", fg.info["embedder_fingerprint"]), fg.embedder)
        runtime.embedder.warm_up()
        runtime.tables = PinnedTables(fg)
    return runtime


def _transformers_generator(registry, config: DeploymentConfig):
    from llmfti.models.embedders import resolve_device, resolve_dtype
    from llmfti.models.transformers_generator import TransformersGenerator

    device = resolve_device(config.backend.device)
    # 'auto': bf16 on CUDA and on CPUs with native bf16 (AVX-512 BF16/AMX), where it is several times
    # faster than fp32 for prefill; fp32 elsewhere. Replays rebuild the same dtype from the config.
    dtype = resolve_dtype(config.backend.dtype, device)
    model, tokenizer, encoder = registry.load_model(config.model, device=device, dtype=dtype)
    model.eval()
    return TransformersGenerator(
        model, tokenizer, eos_token_id=encoder.eos_token_id, pad_token_id=encoder.pad_token_id,
        max_batch_size=config.backend.max_batch_size, batch_window_ms=config.backend.batch_window_ms,
    )


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
