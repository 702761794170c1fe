"""In-process generation with transformers, CPU or GPU, with dynamic batching.

Concurrent requests wait up to `batch_window_ms` in a queue and are generated together (left-padded,
one `model.generate` call), so throughput grows with concurrency. One worker thread owns the model:
torch modules are not safe to call from many threads at once. Streaming requests run as a batch of
one with a token streamer.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

from llmfti.models.generation import Generation, GenerationRequest, GenerationTimeout, Generator


@dataclass
class _Job:
    request: GenerationRequest
    future: Future
    deadline: float
    streamer: object | None = None
    cancelled: bool = False
    enqueued: float = field(default_factory=time.perf_counter)


class TransformersGenerator(Generator):
    name = "transformers"

    def __init__(self, model, tokenizer, *, eos_token_id: int, pad_token_id: int, max_batch_size: int = 8, batch_window_ms: float = 10.0, decoder=None):
        self.model = model
        self.decoder = decoder  # a LlamaCppDecoder: single greedy requests continue in llama.cpp after the prefill
        self.tokenizer = tokenizer
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_ms / 1000.0
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches_run = 0  # for observability and tests of batching

    def warm_up(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._loop, name="llmfti-generate", daemon=True)
                self._worker.start()

    def close(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=5)
            self._worker = None
        if self.decoder is not None and self._worker is None:
            self.decoder.close()
            self.decoder = None

    # --- public API -------------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Generation:
        self.warm_up()
        timeout = request.settings.timeout_s
        job = _Job(request, Future(), time.perf_counter() + timeout)
        self._queue.put(job)
        try:
            return job.future.result(timeout=timeout + 1.0)
        except TimeoutError:
            job.future.cancel()  # the worker skips it: no compute spent on an answer nobody awaits
            raise GenerationTimeout(f"generation did not finish within {timeout:g}s") from None

    def stream(self, request: GenerationRequest):
        """Text pieces as the model produces them; returns the worker's `Generation` (real token
        counts and finish reason: "length" when cut by max_new_tokens)."""
        from transformers import TextIteratorStreamer

        self.warm_up()
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=request.settings.timeout_s)
        job = _Job(request, Future(), time.perf_counter() + request.settings.timeout_s, streamer=streamer)
        self._queue.put(job)
        try:
            for piece in streamer:
                if piece:
                    yield piece
        except queue.Empty:
            raise GenerationTimeout(f"no token within {request.settings.timeout_s:g}s") from None
        finally:
            job.cancelled = True  # a client that went away stops the generation at the next token
        # The streamer ends when generate() returns; the worker then sets the job's Generation (or its
        # error, re-raised here). The same result the blocking path returns, so counts agree.
        return job.future.result(timeout=request.settings.timeout_s)

    # --- worker -----------------------------------------------------------------------------------
    def _collect(self, first: _Job) -> list[_Job]:
        """Gather batch mates: keep waiting while requests keep arriving (each arrival extends the
        window), up to max_batch_size or 4 windows in all. Clients released by the previous batch send
        their next requests a few ms apart; a fixed window would split them into small batches."""
        if first.streamer is not None:
            return [first]
        batch = [first]
        started = time.perf_counter()
        window_end = started + self.batch_window_s
        hard_end = started + 4 * self.batch_window_s
        while len(batch) < self.max_batch_size:
            remaining = min(window_end, hard_end) - time.perf_counter()
            if remaining <= 0:
                break
            try:
                job = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None or job.streamer is not None or not _same_sampling(job, first):
                self._queue.put(job)  # handled in a later round
                break
            batch.append(job)
            window_end = time.perf_counter() + self.batch_window_s
        return batch

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [j for j in self._collect(job) if not (j.future.cancelled() or j.cancelled)]
            if not batch:
                continue
            try:
                results = self._run(batch)
                for j, r in zip(batch, results):
                    if j.future.done():  # cancelled by a caller that timed out meanwhile
                        continue
                    if isinstance(r, Exception):
                        j.future.set_exception(r)
                    else:
                        j.future.set_result(r)
            except Exception as exc:  # a failed batch must fail its requests, never the worker
                for j in batch:
                    if not j.future.done():
                        j.future.set_exception(exc)
                    if j.streamer is not None:
                        j.streamer.end()  # unblock the reader, which then re-raises exc from the future

    def _run(self, batch: list[_Job]) -> list[Generation | Exception]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        deadline = max(j.deadline for j in batch)

        class Deadline(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return time.perf_counter() > deadline or all(j.cancelled for j in batch)

        settings = batch[0].request.settings
        width = max(len(j.request.input_ids) for j in batch)
        ids = [[self.pad_token_id] * (width - len(j.request.input_ids)) + j.request.input_ids for j in batch]
        mask = [[0] * (width - len(j.request.input_ids)) + [1] * len(j.request.input_ids) for j in batch]
        device = next(self.model.parameters()).device
        kwargs = dict(
            input_ids=torch.tensor(ids, device=device), attention_mask=torch.tensor(mask, device=device),
            max_new_tokens=max(j.request.settings.max_new_tokens for j in batch), eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id, stopping_criteria=StoppingCriteriaList([Deadline()]),
        )
        if device.type == "cpu":
            # A preallocated KV cache: the default dynamic cache concatenates K/V every decode step,
            # which was half of all decode time on CPU (profiled: aten::cat 50%); 1.4x faster per token
            # at batch 1 and ~2x at batch 8 with ~700-token prompts.
            kwargs["cache_implementation"] = "static"
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if batch[0].streamer is not None:
            kwargs["streamer"] = batch[0].streamer
        with torch.inference_mode():
            if device.type == "cpu" and settings.temperature == 0:
                out = self._greedy(kwargs["input_ids"], kwargs["attention_mask"], kwargs["max_new_tokens"], kwargs.get("streamer"), Deadline())
            else:
                out = self.model.generate(**kwargs)
        self.batches_run += 1
        finished_at = time.perf_counter()
        results: list[Generation | Exception] = []
        for j, row in zip(batch, out.tolist()):
            if finished_at > j.deadline:
                results.append(GenerationTimeout(f"generation did not finish within {j.request.settings.timeout_s:g}s"))
                continue
            new = row[width:][: j.request.settings.max_new_tokens]
            finish = "length"
            if self.eos_token_id in new:
                new = new[: new.index(self.eos_token_id)]
                finish = "stop"
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            results.append(Generation(text=text.strip(), prompt_tokens=len(j.request.input_ids), completion_tokens=len(new), finish_reason=finish, token_ids=new))
        return results


    def _greedy(self, ids, mask, max_new: int, streamer, stop):
        """Greedy decoding in a plain loop over the model's forward with a preallocated KV cache: the
        same tokens as `model.generate` (a test compares them) with a fraction of its per-token Python
        work, which on a CPU was a third of each decode step for a 135M model (42 -> 29 ms/token)."""
        import torch
        from transformers import StaticCache

        batch, width = ids.shape
        if batch == 1 and self.decoder is not None and ids.device.type == "cpu" and self.decoder.fits(width, max_new):
            return self._greedy_llama_cpp(ids, max_new, streamer, stop)
        cache = StaticCache(config=self.model.config, max_cache_len=width + max_new)
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # left padding: positions start at each prompt
        # Without padding the cache position alone makes attention causal: building a 4-D mask over the
        # whole cache at every step would cost more than the attention itself.
        padded = not bool(mask.all())
        if batch > 1 and ids.device.type == "cpu" and _plain_static(cache):
            out = _prefill_rows(self.model, ids, mask, cache)
        else:
            out = self.model(input_ids=ids, attention_mask=mask if padded else None, position_ids=positions, **cache_kw(self.model, cache),
                             cache_position=torch.arange(width, device=ids.device), use_cache=True, logits_to_keep=1)
        if streamer is not None:
            streamer.put(ids.cpu())
        generated = []
        done = torch.zeros(batch, dtype=torch.bool, device=ids.device)
        last = positions[:, -1]
        with _decode_threads(batch if ids.device.type == "cpu" else None):
            for step in range(max_new):
                token = out.logits[:, -1, :].argmax(-1)
                token = torch.where(done, torch.full_like(token, self.pad_token_id), token)
                generated.append(token)
                if streamer is not None:
                    streamer.put(token.cpu())
                done |= token == self.eos_token_id
                if bool(done.all()) or step == max_new - 1 or stop(None, None):
                    break
                last = last + 1
                if padded:
                    mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=mask.device)], dim=-1)
                out = self.model(input_ids=token[:, None], attention_mask=mask if padded else None, position_ids=last[:, None],
                                 **cache_kw(self.model, cache), cache_position=torch.tensor([width + step], device=ids.device), use_cache=True)
        if streamer is not None:
            streamer.end()
        return torch.cat([ids, torch.stack(generated, dim=1)], dim=1)

    def _greedy_llama_cpp(self, ids, max_new: int, streamer, stop):
        """Prefill here, decode in llama.cpp (`backend.decode: llama_cpp`, llmfti/models/llama_cpp_decode.py)."""
        import torch
        from transformers import StaticCache

        width = ids.shape[1]
        cache = StaticCache(config=self.model.config, max_cache_len=width)
        out = self.model(input_ids=ids, **cache_kw(self.model, cache), cache_position=torch.arange(width, device=ids.device), use_cache=True, logits_to_keep=1)
        if streamer is not None:
            streamer.put(ids.cpu())
        on_token = None if streamer is None else (lambda token: streamer.put(torch.tensor([token])))
        tokens = self.decoder.decode([c.keys[0] for c in cache.layers], [c.values[0] for c in cache.layers], width,
                                     int(out.logits[0, -1].argmax()), max_new, self.eos_token_id, lambda: stop(None, None), on_token)
        if streamer is not None:
            streamer.end()
        return torch.cat([ids, torch.tensor([tokens], dtype=ids.dtype)], dim=1)


def cache_kw(model, cache) -> dict:
    """The forward's keyword for a KV cache: `cache` where the model takes it (transformers 5.x; the
    old `past_key_values` warns and goes in 5.40), `past_key_values` on older releases."""
    import inspect

    base = getattr(model, "get_base_model", lambda: model)()
    cls = type(base)
    if cls not in _CACHE_KW:
        _CACHE_KW[cls] = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    return {_CACHE_KW[cls]: cache}


_CACHE_KW: dict = {}


def _plain_static(cache) -> bool:
    """Whether every layer of `cache` is a full-attention StaticLayer (not sliding-window, whose
    slots rotate), so a prompt's keys and values can be copied into a row of it."""
    from transformers.cache_utils import StaticLayer

    return all(type(layer) is StaticLayer for layer in cache.layers)


class _Logits:
    """What `_greedy` reads from a forward's output: the last position's logits."""

    def __init__(self, logits):
        self.logits = logits


def _prefill_rows(model, ids, mask, cache):
    """Prefill a batch on a CPU one prompt at a time, each at its own length, and copy its keys and
    values into its row of the batch cache (left-padded, as the batched forward would leave them).

    The batched forward runs every row at the longest prompt's width, behind a 4-D mask: on 2 cores
    8 RAG prompts of 453-774 tokens took 7.5-8.0 s batched and 5.3-5.9 s one by one
    (bench/generation.md). A prompt's cache rows are then exactly what a batch of one computes."""
    import torch
    from transformers import StaticCache

    batch, width = ids.shape
    lengths = mask.long().sum(-1).tolist()
    last = []
    for row, n in enumerate(lengths):
        own = StaticCache(config=model.config, max_cache_len=n)
        out = model(input_ids=ids[row:row + 1, width - n:], position_ids=torch.arange(n, device=ids.device)[None],
                    **cache_kw(model, own), cache_position=torch.arange(n, device=ids.device), use_cache=True, logits_to_keep=1)
        last.append(out.logits[:, -1:, :])
        for target, source in zip(cache.layers, own.layers):
            if not target.is_initialized:  # shapes and dtype from the model's own keys, batch rows wide
                target.lazy_initialization(source.keys.expand(batch, -1, -1, -1), source.values.expand(batch, -1, -1, -1))
            target.keys[row, :, width - n:width] = source.keys[0]
            target.values[row, :, width - n:width] = source.values[0]
    for target in cache.layers:
        target.cumulative_length.fill_(width)
    return _Logits(torch.cat(last, dim=0))


# Decoding a few sequences on a CPU runs faster on one intra-op thread when it happens off the main
# thread (the generator's worker): each decode step is a few hundred tiny ops, and once more than one
# thread has an OpenMP team (the worker's, the main thread's, a request thread's embedder) libgomp
# stops spinning between parallel regions, so every op waits for sleeping helpers to wake. Measured on
# 2 cores (int4, ~600-token prompts, bench/generation.md): 45-50 ms/token on 2 threads, 25-27 ms on 1.
# From 8 rows on, a step has enough arithmetic for 2 threads to win (89 vs 105 ms/step). Prefill keeps
# every thread. torch's thread count is process-wide: other work during a decode runs on one thread
# too, which on a small CPU leaves the other core to it.
SINGLE_THREAD_DECODE_ROWS = 4


@contextmanager
def _decode_threads(rows: int | None):
    import torch

    before = torch.get_num_threads()
    if rows is None or rows > SINGLE_THREAD_DECODE_ROWS or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _same_sampling(a: _Job, b: _Job) -> bool:
    sa, sb = a.request.settings, b.request.settings
    return (sa.temperature, sa.top_p) == (sb.temperature, sb.top_p)
