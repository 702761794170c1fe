"""The int8 decode path: prompts (prefill) go through the original weights, generated tokens through
int8 copies; it stays close to the unquantized model, and a LoRA version still differs from its base
(the adapter is folded in before quantizing)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("bits, tolerance", [(8, 0.02), (4, 0.35)])  # a 32-wide random model is int4's worst case
def test_decode_rows_use_the_quantized_copy_and_prefill_keeps_the_original_weights(bits, tolerance):
    import torch

    from llmfti.models.quantize import DECODE_ROWS, quantize_for_decode
    from llmfti.testing.tiny_models import tiny_llama

    ref = tiny_llama(400, initializer_range=0.2)
    model = tiny_llama(400, initializer_range=0.2)
    assert quantize_for_decode(model, bits=bits) >= 14  # 7 linears per layer x 2 layers (+ the head)
    prompt = torch.randint(0, 400, (1, DECODE_ROWS + 8))
    one = prompt[:, :1]
    with torch.no_grad():
        assert torch.equal(model(prompt).logits, ref(prompt).logits)  # prefill: exactly the original weights
        q, r = model(one).logits, ref(one).logits
    assert not torch.equal(q, r)  # the decode row went through the quantized copies
    assert (q - r).norm() / r.norm() < tolerance


def test_the_int4_layer_computes_the_q4_1_scheme():
    """Group-wise asymmetric 4-bit (llama.cpp's Q4_1 scheme), checked against a dequantized reference."""
    import torch

    from llmfti.models.quantize import INT4_GROUP, _int4_linear_class

    torch.manual_seed(0)
    lin = torch.nn.Linear(576, 1536, bias=False).to(torch.bfloat16)
    layer = _int4_linear_class()(lin)
    x = torch.randn(2, 576, dtype=torch.bfloat16)
    w = lin.weight.float().reshape(1536, -1, INT4_GROUP)
    low, high = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
    scale = ((high - low) / 15).clamp(min=1e-8)
    deq = (((w - low) / scale).round().clamp(0, 15) * scale + low).reshape(1536, 576)
    y = layer(x).float()
    assert (y - x.float() @ deq.t()).norm() / y.norm() < 0.02  # the kernel does what the scheme says
    assert (y - x.float() @ lin.weight.float().t()).norm() / y.norm() < 0.15  # and stays near the original


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


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_models_decode_padded_batches(bits):
    """Batched decode feeds the kernels non-contiguous rows (a regression: int4 refused them)."""
    import threading

    from llmfti.config.generation import GenerationSettings
    from llmfti.models.generation import GenerationRequest
    from llmfti.models.quantize import quantize_for_decode
    from llmfti.models.transformers_generator import TransformersGenerator
    from llmfti.testing.tiny_models import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_llama(len(tok))
    quantize_for_decode(model, bits=bits)
    gen = TransformersGenerator(model, tok, eos_token_id=len(tok) + 5, pad_token_id=tok.pad_token_id, max_batch_size=4, batch_window_ms=200)
    out = [None] * 3

    def run(i):
        out[i] = gen.generate(GenerationRequest(input_ids=list(range(5, 12 + 3 * i)), settings=GenerationSettings(max_new_tokens=6)))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gen.close()
    assert [o.completion_tokens for o in out] == [6, 6, 6] and gen.batches_run < 3


def test_the_demo_and_the_gate_decode_unquantized_as_the_readme_says():
    """README: quantization can change greedy answers, so the demo deployment (which the eval gate
    evaluates) keeps `quantize: none`; a change here must change the README too."""
    from pathlib import Path

    import yaml

    from llmfti.config.deployments import DeploymentConfig

    root = Path(__file__).resolve().parents[1]
    config = DeploymentConfig.model_validate(yaml.safe_load((root / "configs/deployments/python-docs.yaml").read_text()))
    assert config.backend.quantize == "none"
    assert "the demo and the eval\ngate keep `none`" in (root / "README.md").read_text()
