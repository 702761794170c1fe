"""No deprecation warning from our own calls into transformers or peft reaches a user (issue 27,
finding 14): generation (batched and single, the two cache paths) and adding a LoRA adapter run with
every warning recorded, and any DeprecationWarning or FutureWarning fails the test, so an upgrade
within the pinned ranges cannot silently break generation."""

from __future__ import annotations

import warnings

import pytest

from llmfti.config.generation import GenerationSettings
from llmfti.models.generation import GenerationRequest


def _deprecations(caught) -> list[str]:
    return [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
            if issubclass(w.category, (DeprecationWarning, FutureWarning))]


@pytest.fixture(scope="module")
def tiny():
    from llmfti.testing.tiny_models import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer()
    return tiny_llama(len(tok)), tok


def test_generation_warns_nothing(tiny):
    from llmfti.models.transformers_generator import TransformersGenerator

    model, tok = tiny
    gen = TransformersGenerator(model, tok, eos_token_id=len(tok) + 10, pad_token_id=tok.pad_token_id)
    ids = tok("the with statement", add_special_tokens=False)["input_ids"]
    requests = [GenerationRequest(input_ids=ids[: n], settings=GenerationSettings(max_new_tokens=4)) for n in (len(ids), 2)]
    from concurrent.futures import ThreadPoolExecutor

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gen.generate(requests[0])
        with ThreadPoolExecutor(2) as pool:  # concurrent requests batch: the padded, row-by-row prefill path
            list(pool.map(gen.generate, requests))
    gen.close()
    assert _deprecations(caught) == []


def test_adding_a_lora_adapter_warns_nothing(tiny):
    from llmfti.config.finetune import LoraSettings
    from llmfti.training.model_setup import add_lora

    model, _ = tiny
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        add_lora(model, LoraSettings(r=2), seed=0)
    assert _deprecations(caught) == []
