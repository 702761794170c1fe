"""The int8 decode path: prompts (prefill) go through the original weights, generated tokens through
int8 copies; it stays close to the unquantized model, and a LoRA version still differs from its base
(the adapter is folded in before quantizing)."""

from __future__ import annotations

import pytest


def test_decode_rows_use_int8_and_prefill_keeps_the_original_weights():
    import torch

    from llmfti.models.quantize import DECODE_ROWS, quantize_for_decode
    from llmfti.testing.tiny_models import tiny_llama

    ref = tiny_llama(400, initializer_range=0.2)
    model = tiny_llama(400, initializer_range=0.2)
    assert quantize_for_decode(model) >= 14  # 7 linears per layer x 2 layers (+ the head)
    prompt = torch.randint(0, 400, (1, DECODE_ROWS + 8))
    one = prompt[:, :1]
    with torch.no_grad():
        assert torch.equal(model(prompt).logits, ref(prompt).logits)  # prefill: exactly the original weights
        q, r = model(one).logits, ref(one).logits
    assert not torch.equal(q, r)  # the decode row went through the int8 copies
    assert (q - r).norm() / r.norm() < 0.02


def test_a_lora_version_served_int8_still_carries_its_adapter(tmp_path):
    from agent_fixtures import deploy, make_home
    from llmfti.pipelines.inference.online import invoke
    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.registry import ModelRegistry
    from llmfti.testing.tiny_models import save_tiny_adapter

    home = make_home(tmp_path)
    reg = ModelRegistry(home)
    adapter = save_tiny_adapter(home / "artifacts" / "models" / "base" / "tiny", tmp_path / "adapter")
    reg.register_version("tiny", base_model="tiny", adapter_dir=str(adapter), encoder=reg.load_encoder("tiny:1"))
    answers = {}
    for model in ("tiny:1", "tiny:2"):
        rec = deploy(home, tmp_path, name=f"q-{model.replace(':', '-')}", model=model,
                     backend={"quantize": "int8", "device": "cpu"}, generation={"max_new_tokens": 12, "timeout_s": 60})
        runtime = build_runtime(home, rec, RuntimeCache())
        answers[model] = invoke(runtime, {"question": "What does the with statement do?"})["answer"]
        runtime.generator.close()
    assert answers["tiny:1"] != answers["tiny:2"]


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_quantize_is_part_of_the_tuple(quantize):
    from llmfti.config.deployments import DeploymentConfig
    from llmfti.registry.deployments import tuple_key

    base = {"name": "q", "model": "m:1", "retrieval": {"k": 0}}
    k = tuple_key(DeploymentConfig.model_validate({**base, "backend": {"quantize": quantize}}), None)
    assert (k == tuple_key(DeploymentConfig.model_validate(base), None)) == (quantize == "none")
