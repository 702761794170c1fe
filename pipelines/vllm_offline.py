"""vLLM's offline engine as an llmfti generator, for `llmfti batch-infer --generator vllm`.

`BatchingGenerator` collects concurrent requests into batches on one worker thread (offline engines
are not thread-safe); `VLLMOfflineGenerator` feeds vLLM the encoder's exact token ids, with a
`LoRARequest` per prompt for an adapter version. vLLM itself is imported on use (`vllm_api_default`):
it needs CUDA and is an optional extra (`llmfti[vllm]`).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

from llmfti.errors import ConfigError
from llmfti.models.generation import Generation, GenerationRequest, GenerationTimeout, Generator


class BatchingGenerator(Generator):
    """A generator that collects requests arriving within `window_ms` (up to `max_batch`) and hands
    them to `generate_batch` together, from one worker thread (offline engines are not thread-safe)."""

    def __init__(self, *, max_batch: int = 256, window_ms: float = 20.0):
        self.max_batch, self.window_s = max_batch, window_ms / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches_run = 0

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        raise NotImplementedError

    def warm_up(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._loop, name="llmfti-batch-generate", daemon=True)
                self._worker.start()

    def generate(self, request: GenerationRequest) -> Generation:
        self.warm_up()
        fut: Future = Future()
        self._queue.put((request, fut))
        try:
            return fut.result(timeout=request.settings.timeout_s + 1.0)
        except TimeoutError:
            raise GenerationTimeout(f"generation did not finish within {request.settings.timeout_s:g}s") from None

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            deadline = time.perf_counter() + self.window_s
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.perf_counter()))
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)
                    break
                jobs.append(job)
            try:
                gens = self.generate_batch([r for r, _ in jobs])
                for (_, fut), gen in zip(jobs, gens):
                    fut.set_result(gen)
            except Exception as exc:  # noqa: BLE001  every waiting request gets the engine's error
                for _, fut in jobs:
                    if not fut.done():
                        fut.set_exception(exc)
            self.batches_run += 1

    def close(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=5)
            self._worker = None


def vllm_api_default():
    """vLLM's offline API (LLM, SamplingParams, LoRARequest), imported on use."""
    try:
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest
    except ImportError:
        raise ConfigError("--generator vllm needs vLLM (and CUDA)", hint="pip install 'llmfti[vllm]' on a CUDA machine") from None
    return SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams, LoRARequest=LoRARequest)


class VLLMOfflineGenerator(BatchingGenerator):
    """vLLM's offline engine as a generator: prompts are the encoder's token ids (what was
    fingerprinted and trained on), and a model version with a LoRA adapter gets a `LoRARequest` per
    prompt (the engine is built with `enable_lora=True`), so one engine can serve several adapters."""

    name = "vllm"

    def __init__(self, llm, api, *, eos_token_id: int | None, lora: tuple[str, int, str] | None = None, max_batch: int = 256):
        super().__init__(max_batch=max_batch)
        self.llm, self.api, self.eos_token_id, self.lora = llm, api, eos_token_id, lora

    @classmethod
    def for_deployment(cls, home, config, api=None, **engine_kwargs) -> "VLLMOfflineGenerator":
        """Verify the model version (hashes, fingerprint), then build the engine on its base model folder
        with its pinned tokenizer, with LoRA enabled when the version has an adapter."""
        from llmfti.registry import ModelRegistry

        api = api or vllm_api_default()
        registry = ModelRegistry(home)
        registry.check(config.model)  # what vLLM loads must be what the registry recorded
        mv = registry.get(config.model)
        encoder = registry.load_encoder(config.model)
        kwargs = {"model": str(registry.base_path(mv.base_model)), "tokenizer": str(mv.tokenizer_dir), **engine_kwargs}
        if config.backend.dtype != "auto":
            kwargs["dtype"] = config.backend.dtype
        lora = None
        if mv.adapter_sha256:
            adapter = json.loads((Path(mv.adapter_dir) / "adapter_config.json").read_text())
            kwargs.update(enable_lora=True, max_lora_rank=max(8, int(adapter.get("r", 8))))
            lora = (mv.ref.replace(":", "-"), max(1, int(mv.version)), str(mv.adapter_dir))
        return cls(api.LLM(**kwargs), api, eos_token_id=encoder.eos_token_id, lora=lora)

    def generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        params = [self.api.SamplingParams(max_tokens=r.settings.max_new_tokens, temperature=r.settings.temperature, top_p=r.settings.top_p,
                                          stop_token_ids=[self.eos_token_id] if self.eos_token_id is not None else None)
                  for r in requests]
        prompts = [{"prompt_token_ids": list(r.input_ids)} for r in requests]
        lora = [self.api.LoRARequest(*self.lora) for _ in requests] if self.lora else None
        outputs = self.llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
        gens = []
        for req, out in zip(requests, outputs):
            best = out.outputs[0]
            gens.append(Generation(text=best.text.strip(), prompt_tokens=len(req.input_ids), completion_tokens=len(best.token_ids),
                                   finish_reason="stop" if best.finish_reason == "stop" else "length", token_ids=list(best.token_ids)))
        return gens
