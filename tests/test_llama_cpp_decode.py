"""`backend.decode: llama_cpp`: transformers prefills, llama.cpp decodes from the handed-over keys and
values (llmfti/models/llama_cpp_decode.py). The refusals run everywhere; the rest needs llama-cpp-python
(a native build that CI installs, `make test` does not) and the embedded SmolLM2 with its GGUF. Slow."""

from __future__ import annotations

import pytest

from llmfti.errors import ConfigError
from llmfti.models.transformers_generator import cache_kw

PROMPT = "What does the with statement do in Python?"


def test_a_model_without_its_gguf_and_a_lora_llama_cpp_cannot_carry_are_refused(tmp_path):
    from peft import LoraConfig, get_peft_model

    from llmfti.models.llama_cpp_decode import write_lora_gguf
    from llmfti.pipelines.inference.runtime import _llama_cpp_decoder
    from llmfti.testing.tiny_models import tiny_llama, tiny_tokenizer

    model = tiny_llama(len(tiny_tokenizer()))
    with pytest.raises(ConfigError, match="not on this machine"):
        _llama_cpp_decoder(model, encoder=None)  # a plain float checkpoint: no GGUF to decode with
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(ConfigError, match="not on this machine"):
        _llama_cpp_decoder(lora, encoder=None)  # its base has no GGUF either
    assert write_lora_gguf(lora, tmp_path / "a.gguf") == len(model.model.layers)
    odd = get_peft_model(tiny_llama(len(tiny_tokenizer())), LoraConfig(r=2, target_modules=["lm_head"]))
    with pytest.raises(ConfigError, match="cannot carry a LoRA on"):
        write_lora_gguf(odd, tmp_path / "b.gguf")


def test_the_decode_engine_is_part_of_the_evaluated_tuple():
    from llmfti.config.deployments import DeploymentConfig
    from llmfti.registry.deployments import tuple_key

    base = {"name": "d", "model": "m:1", "feature_group": "fg:1"}
    default = DeploymentConfig.model_validate(base)
    torch_ = DeploymentConfig.model_validate(base | {"backend": {"decode": "torch"}})
    llama = DeploymentConfig.model_validate(base | {"backend": {"decode": "llama_cpp"}})
    assert tuple_key(default, 1) == tuple_key(torch_, 1) != tuple_key(llama, 1)  # earlier evals of torch configs still qualify


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is an optional native build (CI installs it)")
    from llmfti.home import ProjectHome
    from llmfti.models.embedders import resolve_dtype
    from llmfti.registry import ModelRegistry
    from llmfti.registry.defaults import pull_defaults

    home = ProjectHome.at(tmp_path_factory.mktemp("smollm2") / ".llmfti")
    pull_defaults(home)
    model, tokenizer, encoder = ModelRegistry(home).load_model("SmolLM2-135M-Instruct:1", device="cpu", dtype=resolve_dtype("auto", "cpu"))
    model.eval()
    return model, tokenizer, encoder


@pytest.mark.slow
def test_keys_handed_over_match_llama_cpps_own_and_need_the_rope_interleave(smollm2):
    import numpy as np

    from llmfti.models.llama_cpp_decode import LlamaCppDecoder, state_bytes
    from llmfti.registry.base_models import source_gguf

    model, _, encoder = smollm2
    from pathlib import Path

    decoder = LlamaCppDecoder(source_gguf(Path(model.config._name_or_path)), model.config, n_ctx=512)
    ids = encoder.encode_prompt(PROMPT, []).input_ids
    assert decoder.check(model, ids) > 0.99
    # Without interleaving RoPE's halves the keys are llama.cpp's in another order: the check exists to catch that.
    import torch
    from transformers import StaticCache

    n = len(ids)
    cache = StaticCache(config=model.config, max_cache_len=n)
    with torch.inference_mode():
        model(input_ids=torch.tensor([ids]), **cache_kw(model, cache), use_cache=True)
    keys, values = [c.keys[0] for c in cache.layers], [c.values[0] for c in cache.layers]
    right = state_bytes(decoder.layout, keys, values, n, decoder.head_dim, True)
    wrong = state_bytes(decoder.layout, keys, values, n, decoder.head_dim, False)
    decoder._clear()
    decoder.llm.eval(ids)
    own = np.frombuffer(decoder._state(), dtype=np.uint8)
    start = 16 + 12 * n + 8 + 12  # the first layer's keys
    span = n * decoder.layout.row * 2

    def corr(state):
        return np.corrcoef(own[start:start + span].view(np.float16).astype(np.float32), state[start:start + span].view(np.float16).astype(np.float32))[0, 1]

    assert own.size == right.size and corr(right) > 0.99 > corr(wrong)
    decoder.close()


@pytest.mark.slow
def test_a_single_request_decodes_in_llama_cpp_and_answers_as_llama_cpp_does(smollm2):
    import threading

    from llmfti.config.generation import GenerationSettings
    from llmfti.models.generation import GenerationRequest
    from llmfti.models.llama_cpp_decode import LlamaCppDecoder
    from llmfti.models.transformers_generator import TransformersGenerator
    from llmfti.registry.base_models import source_gguf
    from pathlib import Path

    model, tokenizer, encoder = smollm2
    gguf = source_gguf(Path(model.config._name_or_path))
    decoder = LlamaCppDecoder(gguf, model.config, n_ctx=512)
    decoder.check(model, encoder.encode_prompt("hello", []).input_ids)
    calls = []
    real = decoder.decode
    decoder.decode = lambda *a, **k: calls.append(1) or real(*a, **k)
    gen = TransformersGenerator(model, tokenizer, eos_token_id=encoder.eos_token_id, pad_token_id=encoder.pad_token_id, decoder=decoder)
    ids = encoder.encode_prompt(PROMPT, []).input_ids
    request = GenerationRequest(input_ids=ids, settings=GenerationSettings(max_new_tokens=12, timeout_s=120))
    try:
        out = gen.generate(request)
        assert calls == [1] and out.completion_tokens > 0
        # llama.cpp's own greedy continuation of the same ids (its own prefill) starts the same way
        from llama_cpp import Llama

        peer = Llama(model_path=str(gguf), n_ctx=512, n_threads=2, verbose=False)
        theirs = []
        for token in peer.generate(ids, temp=0.0, top_k=1):
            theirs.append(token)
            if len(theirs) == 4:
                break
        peer.close()
        assert out.token_ids[:4] == theirs
        streamed = "".join(gen.stream(request))
        assert streamed.strip() == out.text and calls == [1, 1]
        # two requests at once are a batch: they decode on torch, prefilled prompt by prompt
        results = [None, None]
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, gen.generate(request))) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r.completion_tokens > 0 for r in results)
    finally:
        gen.close()


@pytest.mark.slow
def test_an_openmp_build_of_llama_cpp_is_named_in_the_log(smollm2, monkeypatch, caplog):
    """An OpenMP llama.cpp shares libgomp with torch and decodes ~1.4x slower in the generator's worker
    (bench/generation.md, trial 12): the operator is told at load, with the build flag that fixes it."""
    from pathlib import Path

    import llmfti.models.llama_cpp_decode as module
    from llmfti.registry.base_models import source_gguf

    model = smollm2[0]
    gguf = source_gguf(Path(model.config._name_or_path))
    monkeypatch.setattr(module, "llama_cpp_system_info", lambda: b"CPU : AVX2 = 1 | OPENMP = 1 | REPACK = 1 |")
    with caplog.at_level("WARNING", logger=module.__name__):
        module.LlamaCppDecoder(gguf, model.config, n_ctx=256).close()
    assert "GGML_OPENMP=OFF" in caplog.text
    caplog.clear()
    monkeypatch.setattr(module, "llama_cpp_system_info", lambda: b"CPU : AVX2 = 1 | REPACK = 1 |")
    with caplog.at_level("WARNING", logger=module.__name__):
        module.LlamaCppDecoder(gguf, model.config, n_ctx=256).close()
    assert "OPENMP" not in caplog.text


@pytest.mark.slow
def test_a_lora_version_decodes_in_llama_cpp_with_its_adapter(smollm2):
    """A LoRA version's adapter goes to llama.cpp as a GGUF LoRA: the load-time check holds llama.cpp's
    keys and values (adapter applied) to transformers' own, the adapter changes the answer, and the
    answer starts as transformers' own greedy decode of the adapted model."""
    import torch
    from peft import LoraConfig, get_peft_model

    from llmfti.config.generation import GenerationSettings
    from llmfti.models.generation import GenerationRequest
    from llmfti.models.llama_cpp_decode import LORA_TARGETS
    from llmfti.models.transformers_generator import TransformersGenerator
    from llmfti.pipelines.inference.runtime import _llama_cpp_decoder

    model, tokenizer, encoder = smollm2
    torch.manual_seed(0)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(LORA_TARGETS)))
    for name, p in lora.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.2)  # an adapter that moves the answer (peft initialises B at 0)
    lora.eval()
    ids = encoder.encode_prompt(PROMPT, []).input_ids
    request = GenerationRequest(input_ids=ids, settings=GenerationSettings(max_new_tokens=10, timeout_s=120))
    adapted = TransformersGenerator(lora, tokenizer, eos_token_id=encoder.eos_token_id, pad_token_id=encoder.pad_token_id,
                                    decoder=_llama_cpp_decoder(lora, encoder))
    on_torch = TransformersGenerator(lora, tokenizer, eos_token_id=encoder.eos_token_id, pad_token_id=encoder.pad_token_id)
    try:
        mine, reference = adapted.generate(request), on_torch.generate(request)
        assert mine.token_ids[:3] == reference.token_ids[:3]
        with lora.disable_adapter():
            plain = TransformersGenerator(lora, tokenizer, eos_token_id=encoder.eos_token_id, pad_token_id=encoder.pad_token_id)
            base = plain.generate(request)
            plain.close()
        assert mine.token_ids != base.token_ids  # the adapter changes the output on the llama.cpp path
    finally:
        adapted.close()
        on_torch.close()
        lora.unload()  # the module fixture's model is shared: take the LoRA layers out again


@pytest.mark.slow
def test_a_gguf_of_another_model_shape_is_refused_at_load(smollm2):
    """The load-time check refuses a GGUF whose layers or key widths are not the model's with a clear
    error, before any state is built from the model's keys."""
    from pathlib import Path

    from llmfti.models.llama_cpp_decode import LlamaCppDecoder
    from llmfti.registry.base_models import source_gguf
    from llmfti.testing.tiny_models import tiny_llama, tiny_tokenizer

    model = smollm2[0]
    other = tiny_llama(len(tiny_tokenizer()))
    decoder = LlamaCppDecoder(source_gguf(Path(model.config._name_or_path)), other.config, n_ctx=256)
    try:
        with pytest.raises(ConfigError, match="not this model's GGUF"):
            decoder.check(other, [1, 2, 3, 4])
    finally:
        decoder.close()
