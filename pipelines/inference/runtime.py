"""A loaded deployment version: `DeploymentRuntime` holds one version's model, encoder, generator,
embedder and feature-group tables, immutable, so a request keeps the tuple it started with.
`build_runtime` loads one (verifying fingerprints on the way); `RuntimeCache` shares generators and
embedders across versions keyed by what makes them, and keeps at most `max_items` of them (least
recently used out first, never what `pin()` holds: the service pins what its active deployments and
their rollback targets use). The service's hot swap is `llmfti.agents.manager.DeploymentManager`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from llmfti.config.deployments import DeploymentConfig, request_model


@dataclass
class DeploymentRuntime:
    record: object  # llmfti.registry.deployments.DeploymentRecord
    config: DeploymentConfig
    encoder: object
    generator: object
    fg: object | None = None
    embedder: object | None = None
    tables: object | None = None
    request_model: type | None = None
    model_info: dict = field(default_factory=dict)
    filter_kinds: dict = field(default_factory=dict)  # filter column -> 'string' | 'integer' | 'boolean'
    commits: object | None = None  # llmfti.pipelines.inference.commits.CommitPolicy
    cache_keys: tuple = ()  # the RuntimeCache keys of its generator and embedder (what to pin while it may serve)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def version(self) -> int:
        return int(self.record["version"])

    def commit_for_request(self) -> int | None:
        """The commit a request reads (see `choose_commit`)."""
        return self.choose_commit()[0]

    def choose_commit(self) -> tuple[int | None, bool]:
        """(the pinned commit, or under `latest` the newest evaluated one; whether it was evaluated)."""
        if self.tables is None:
            return None, False
        return self.commits.choose()

    def latest_commit(self) -> int | None:
        """The newest commit of the feature group, evaluated or not (evals of a new commit read this)."""
        return None if self.tables is None else self.tables.latest_commit()


DEFAULT_MAX_ITEMS = 4  # generators + embedders kept loaded: a few model versions, not every one ever deployed


class RuntimeCache:
    """Generators and embedders shared across deployment versions (keyed by what makes them), LRU-
    bounded: past `max_items`, the least recently used unpinned item is dropped and closed (a
    generator's worker thread ends; its weights are freed once no runtime holds it). A deployment
    swapped out long ago would otherwise keep its model in memory for the life of the server."""

    def __init__(self, max_items: int = DEFAULT_MAX_ITEMS):
        self.max_items = max(1, max_items)
        self._items: OrderedDict[tuple, object] = OrderedDict()
        self._pinned: set[tuple] = set()
        self._held: set[tuple] | None = None  # keys handed out inside hold(): kept until it ends
        self._lock = threading.RLock()
        self.evicted: list[tuple] = []  # keys dropped so far (observability, tests)

    def get(self, key: tuple, build):
        with self._lock:
            if self._held is not None:
                self._held.add(key)
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            item = self._items[key] = build()
            self._evict(keep=key)  # never the item being handed out: a runtime is being built on it
            return item

    @contextmanager
    def hold(self):
        """While building runtimes: nothing handed out is evicted until the block ends (by then the
        caller has pinned what it keeps), so a build never loses the generator it just loaded."""
        with self._lock:
            self._held = set()
        try:
            yield self
        finally:
            with self._lock:
                self._held = None
                self._evict()

    def pin(self, keys) -> None:
        """Keep these keys loaded whatever their age (replaces the previous pins)."""
        with self._lock:
            self._pinned = set(keys)
            self._evict()

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._items)

    def _evict(self, keep: tuple | None = None) -> None:
        while len(self._items) > self.max_items:
            held = self._held or ()
            victim = next((k for k in self._items if k not in self._pinned and k != keep and k not in held), None)
            if victim is None:
                return  # everything left is pinned: over the bound rather than unload what serves
            item = self._items.pop(victim)
            self.evicted.append(victim)
            close = getattr(item, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # closing is best effort; the item is dropped either way
                    pass


def build_runtime(home, record, cache: RuntimeCache, generator_override=None) -> DeploymentRuntime:
    from llmfti.registry import ModelRegistry

    config = DeploymentConfig.model_validate(record["config"])
    registry = ModelRegistry(home)
    encoder = registry.load_encoder(config.model, template=config.prompt_template, max_prompt_tokens=config.max_prompt_tokens)
    backend = config.backend
    keys: list[tuple] = []
    if generator_override is not None:
        generator = generator_override
    elif backend.kind == "openai":
        from llmfti.models.openai_generator import OpenAIGenerator

        mode = backend.effective_prompt_mode
        keys.append(("openai", backend.base_url, backend.model, backend.api_key_env, mode))
        generator = cache.get(keys[-1], lambda: OpenAIGenerator(backend.base_url, backend.model, backend.api_key_env, prompt_mode=mode))
        generator.check_serves(adapter=registry.get(config.model).adapter_sha256 is not None)
    else:
        # Everything that shapes the generator is in the key: a new version changing the batching gets its own.
        key = ("transformers", config.model, backend.device, backend.dtype, backend.quantize, backend.decode, backend.max_batch_size, backend.batch_window_ms)
        keys.append(key)
        generator = cache.get(key, lambda: _transformers_generator(registry, config))
    generator.warm_up()
    runtime = DeploymentRuntime(record=record, config=config, encoder=encoder, generator=generator, request_model=request_model(config))
    runtime.model_info = {"model": config.model, "backend": backend.kind, "prompt_mode": backend.effective_prompt_mode}
    if config.feature_group:
        from llmfti.pipelines.inference.retrieval import PinnedTables
        from llmfti.store import FeatureStore

        fg = FeatureStore(home).feature_group(config.feature_group)
        runtime.fg = fg
        keys.append(("embedder", fg.info["embedder_fingerprint"]))
        runtime.embedder = cache.get(keys[-1], fg.embedder)
        runtime.embedder.warm_up()
        runtime.tables = PinnedTables(fg)
        from llmfti.pipelines.inference.commits import CommitPolicy

        runtime.commits = CommitPolicy(home, record, config, runtime.tables)
        if config.retrieval.filters:
            from llmfti.config.deployments import filterable_columns

            kinds = filterable_columns(fg.table().schema)
            runtime.filter_kinds = {col: kinds[col] for col in config.retrieval.filters if col in kinds}
    runtime.cache_keys = tuple(keys)
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
    decoder = _llama_cpp_decoder(model, encoder) if config.backend.decode == "llama_cpp" else None
    if config.backend.quantize != "none" and device == "cpu":
        from llmfti.models.quantize import quantize_for_decode

        if hasattr(model, "merge_and_unload"):  # a LoRA version: fold the (verified) adapter into the weights first
            model = model.merge_and_unload()
        quantize_for_decode(model, bits=8 if config.backend.quantize == "int8" else 4)
    return TransformersGenerator(
        model, tokenizer, eos_token_id=encoder.eos_token_id, pad_token_id=encoder.pad_token_id,
        max_batch_size=config.backend.max_batch_size, batch_window_ms=config.backend.batch_window_ms, decoder=decoder,
    )


def _llama_cpp_decoder(model, encoder):
    """The llama.cpp decoder for a model version imported from a GGUF (a LoRA version: its base's GGUF
    plus its adapter written as a GGUF LoRA), checked against the model's own keys and values
    (`LlamaCppDecoder.check`); ConfigError for anything it cannot run."""

    from llmfti.errors import ConfigError
    from llmfti.models.llama_cpp_decode import LlamaCppDecoder
    from llmfti.registry.base_models import source_gguf

    if next(model.parameters()).device.type != "cpu":
        raise ConfigError("backend.decode: llama_cpp runs on a CPU; on a GPU use backend.decode: torch")
    lora = None
    if hasattr(model, "merge_and_unload"):  # a LoRA version: its adapter goes to llama.cpp as a GGUF LoRA next to the base GGUF
        import tempfile

        from llmfti.models.llama_cpp_decode import write_lora_gguf

        base = model.get_base_model()
        gguf = source_gguf(Path(base.config._name_or_path))
        lora = Path(tempfile.mkdtemp(prefix="llmfti-lora-")) / "adapter.gguf"
        write_lora_gguf(model, lora)
    else:
        gguf = source_gguf(Path(model.config._name_or_path))
    try:
        decoder = LlamaCppDecoder(gguf, model.config, lora_path=lora)
    finally:
        if lora is not None:  # llama.cpp holds the adapter in memory once loaded
            import shutil

            shutil.rmtree(lora.parent, ignore_errors=True)
    decoder.check(model, encoder.encode_prompt("What does the with statement do?", []).input_ids[:48])
    return decoder
