"""The embedded default generator goes through the registry like any import (slow: ~30 s GGUF import)."""

from __future__ import annotations

import pytest

from llmfti.transforms.model_dependent import Context, PromptEncoder

pytestmark = pytest.mark.slow


def test_pull_defaults_registers_smollm_and_serves_it_verified(tmp_path):
    import torch

    from llmfti.home import ProjectHome
    from llmfti.models.defaults import DEFAULT_GENERATOR
    from llmfti.registry.defaults import pull_generator
    from llmfti.registry import ModelRegistry

    home = ProjectHome.at(tmp_path / "home")
    first = pull_generator(home)
    assert first["status"] == "imported" and first["model_version"] == f"{DEFAULT_GENERATOR}:1"
    assert pull_generator(home)["status"] == "present"  # idempotent, no second import
    reg = ModelRegistry(home)
    base = reg.get_base(DEFAULT_GENERATOR)
    assert base["source_kind"] == "gguf" and base["architecture"] == "LlamaForCausalLM"
    assert base["license"] == "apache-2.0" and base["context_length"] == 8192 and 130e6 < base["parameters"] < 140e6
    assert reg.check(first["model_version"]).ok

    model, tokenizer, encoder = reg.load_model(first["model_version"])
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # SmolLM2: pad == eos, labels still keep EOS
    training = PromptEncoder.from_model_dir(reg.base_path(DEFAULT_GENERATOR), "rag-default")
    ctx = [Context("c1", "The with statement calls __exit__ even when the block raises."), Context("c2", "Loops iterate.")]
    question = "Does __exit__ run when the block raises?"
    served = encoder.encode_prompt(question, ctx)
    example = training.encode_example(question, "Yes [1].", ctx)
    assert example.input_ids[: example.prompt_length] == served.input_ids and example.labels[-1] == tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(torch.tensor([served.input_ids]), max_new_tokens=12, do_sample=False, pad_token_id=encoder.pad_token_id)
    assert tokenizer.decode(out[0, len(served.input_ids) :], skip_special_tokens=True).strip()
