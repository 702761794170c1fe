"""The in-process generator's worker, tested on a tiny random model (not the scripted double): a
streaming client that goes away stops its generation and is logged `cancelled`; a worker error ends
the stream with that error instead of hanging it; a job whose caller timed out is skipped."""

from __future__ import annotations

import threading
import time

import pytest

from llmfti.config.generation import GenerationSettings
from llmfti.models.generation import GenerationRequest, GenerationTimeout
from llmfti.models.transformers_generator import cache_kw


@pytest.fixture(scope="module")
def tiny():
    from llmfti.testing.tiny_models import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer()
    return tiny_llama(len(tok)), tok


def _generator(tiny, **kw):
    from llmfti.models.transformers_generator import TransformersGenerator

    model, tok = tiny
    # eos set to an id the random model will not pick: generations run to max_new_tokens
    return TransformersGenerator(model, tok, eos_token_id=len(tok) + 10, pad_token_id=tok.pad_token_id, **kw)


def _request(tok, max_new_tokens=8, timeout_s=60.0):
    return GenerationRequest(input_ids=tok("the with statement", add_special_tokens=False)["input_ids"],
                             settings=GenerationSettings(max_new_tokens=max_new_tokens, timeout_s=timeout_s))


def test_a_client_that_goes_away_stops_its_generation(tiny):
    _, tok = tiny
    gen = _generator(tiny)
    steps = []
    real = gen.model.forward

    def counting(*args, **kwargs):
        steps.append(1)
        time.sleep(0.01)  # a slower model, so stopping early is visible
        return real(*args, **kwargs)

    gen.model.forward = counting
    try:
        stream = gen.stream(_request(tok, max_new_tokens=2000))
        next(stream)
        stream.close()  # the client disconnected: GeneratorExit inside the stream
        time.sleep(0.3)
        done = len(steps)
        time.sleep(0.3)
        assert len(steps) == done < 200, "generation went on after the client left"
        assert gen.generate(_request(tok)).completion_tokens == 8  # the worker is free again
    finally:
        gen.model.forward = real
        gen.close()


def test_a_disconnected_stream_is_logged_cancelled(tiny, tmp_path):
    from agent_fixtures import deploy, make_home
    from llmfti.pipelines.inference.online import prepare_logged, stream_prepared
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    home = make_home(tmp_path)
    deploy(home, tmp_path, name="s", generation={"max_new_tokens": 500, "timeout_s": 60})
    runtime = build_runtime(home, DeploymentStore(home).active("s"), RuntimeCache())
    log = InferenceLog(FeatureStore(home))
    prepared = prepare_logged(runtime, {"question": "What does with do?"}, log=log)
    events = stream_prepared(prepared, log=log)
    assert next(events)[0] == "token"
    events.close()
    log.close()
    row = InferenceLog(FeatureStore(home)).query("s", request_id=prepared.request_id)[0]
    assert row["status"] == "cancelled"
    runtime.generator.close()


def test_a_worker_error_ends_the_stream_with_that_error(tiny):
    _, tok = tiny
    gen = _generator(tiny)

    def broken(batch):
        raise RuntimeError("the model blew up")

    gen._run = broken
    try:
        outcome = {}

        def consume():
            try:
                list(gen.stream(_request(tok)))
                outcome["error"] = None
            except Exception as exc:  # noqa: BLE001 - the test records whatever comes out
                outcome["error"] = exc

        reader = threading.Thread(target=consume)
        reader.start()
        reader.join(timeout=20)
        assert not reader.is_alive(), "the stream hung after the worker failed"
        assert isinstance(outcome["error"], RuntimeError) and "blew up" in str(outcome["error"])
    finally:
        gen.close()


def test_a_job_whose_caller_timed_out_is_skipped(tiny):
    _, tok = tiny
    gen = _generator(tiny, max_batch_size=1)
    ran = []
    real_run = gen._run
    release = threading.Event()

    def run(batch):
        ran.append([j.request.settings.max_new_tokens for j in batch])
        if len(ran) == 1:
            release.wait(timeout=20)  # hold the worker: the next caller times out while waiting
        return real_run(batch)

    gen._run = run
    try:
        first = threading.Thread(target=lambda: gen.generate(_request(tok, max_new_tokens=3)))
        first.start()
        time.sleep(0.2)
        with pytest.raises(GenerationTimeout):
            gen.generate(_request(tok, max_new_tokens=5, timeout_s=0.1))
        release.set()
        first.join(timeout=20)
        assert gen.generate(_request(tok, max_new_tokens=7)).completion_tokens == 7
        assert [n for batch in ran for n in batch] == [3, 7]  # the timed-out job (5) never ran
    finally:
        gen.close()


@pytest.mark.parametrize("prompts", [["the with statement wraps"], ["the with statement wraps", "a for loop iterates over an iterable and", "yield"]],
                         ids=["one", "padded-batch"])
def test_the_greedy_loop_returns_what_model_generate_returns(tiny, prompts):
    """The CPU greedy path is a plain decode loop (fewer Python steps per token than generate()): it
    must produce exactly generate()'s tokens, batched with left padding too."""
    import torch

    model, tok = tiny
    gen = _generator(tiny)
    rows = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(map(len, rows))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    with torch.inference_mode():
        ref = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=16, do_sample=False, eos_token_id=gen.eos_token_id,
                             pad_token_id=tok.pad_token_id, cache_implementation="static")
        mine = gen._greedy(ids, mask, 16, None, lambda *_: False)
    assert torch.equal(ref, mine)


@pytest.mark.parametrize("rows,decode_threads", [(1, 1), (8, 2)], ids=["one-row-decodes-on-one-thread", "eight-rows-keep-every-thread"])
def test_small_decodes_run_on_one_thread_and_the_count_comes_back(tiny, rows, decode_threads):
    """Off the main thread, a decode step of a few rows is hundreds of tiny ops that run faster on one
    intra-op thread (bench/generation.md); prefill keeps every thread, and so do wide batches. The
    process-wide count is restored afterwards, also when a step fails."""
    import torch

    model, tok = tiny
    gen = _generator(tiny, max_batch_size=8)
    seen = []
    real = gen.model.forward

    def recording(*args, **kwargs):
        seen.append((kwargs["input_ids"].shape[1], torch.get_num_threads()))
        return real(*args, **kwargs)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    gen.model.forward = recording
    try:
        ids = torch.tensor([tok("the with statement wraps", add_special_tokens=False)["input_ids"]] * rows)
        with torch.inference_mode():
            gen._greedy(ids, torch.ones_like(ids), 4, None, lambda *_: False)
        prefill, decode = seen[:rows], seen[rows:]  # a batch is prefilled one prompt at a time on a CPU
        assert prefill == [(ids.shape[1], 2)] * rows
        assert {n for width, n in decode} == {decode_threads} and len(decode) == 3
        assert torch.get_num_threads() == 2

        def failing(*args, **kwargs):
            if kwargs["input_ids"].shape[1] == 1:
                raise RuntimeError("step failed")
            return real(*args, **kwargs)

        gen.model.forward = failing
        with pytest.raises(RuntimeError), torch.inference_mode():
            gen._greedy(ids, torch.ones_like(ids), 4, None, lambda *_: False)
        assert torch.get_num_threads() == 2
    finally:
        gen.model.forward = real
        torch.set_num_threads(before)


def test_a_batch_is_prefilled_prompt_by_prompt_and_answers_as_each_prompt_alone(tiny):
    """On a CPU a batch's prompts are prefilled one at a time at their own lengths (a padded batched
    prefill ran every row at the longest prompt's width: 7.5-8.0 s against 5.3-5.9 s for 8 RAG
    prompts, bench/generation.md), and copied into their rows of the batch cache. Each row then
    decodes to what its prompt gives alone, and its cache rows equal a batch of one's."""
    import torch
    from transformers import StaticCache

    model, tok = tiny
    gen = _generator(tiny, max_batch_size=8)
    prompts = ["the with statement wraps", "a for loop iterates over an iterable and", "yield"]
    rows = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(map(len, rows))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    widths = []
    real = gen.model.forward

    def recording(*args, **kwargs):
        widths.append(tuple(kwargs["input_ids"].shape))
        return real(*args, **kwargs)

    gen.model.forward = recording
    try:
        with torch.inference_mode():
            batched = gen._greedy(ids, mask, 12, None, lambda *_: False)[:, width:]
    finally:
        gen.model.forward = real
    assert widths[:3] == [(1, len(r)) for r in rows]  # no padding computed in the prefill
    with torch.inference_mode():
        for row, r in enumerate(rows):
            alone = gen._greedy(torch.tensor([r]), torch.ones(1, len(r), dtype=torch.long), 12, None, lambda *_: False)[0, len(r):]
            assert torch.equal(batched[row], alone), f"row {row} answered differently in the batch"
        from llmfti.models.transformers_generator import _prefill_rows

        cache = StaticCache(config=model.config, max_cache_len=width + 4)
        _prefill_rows(model, ids, mask, cache)
        one = StaticCache(config=model.config, max_cache_len=len(rows[1]))
        model(input_ids=torch.tensor([rows[1]]), **cache_kw(model, one), use_cache=True)
        n = len(rows[1])
        assert torch.equal(cache.layers[0].keys[1, :, width - n:width], one.layers[0].keys[0])
        assert torch.equal(cache.layers[-1].values[1, :, width - n:width], one.layers[-1].values[0])
        assert not cache.layers[0].keys[2, :, : width - len(rows[2])].any()  # padding slots stay empty (masked)
