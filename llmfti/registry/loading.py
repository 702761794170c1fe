"""Loading a verified model version's weights: base model folder plus the peft adapter if any."""

from __future__ import annotations

from llmfti.errors import ConfigError, IncompatibleError
from llmfti.hashing import sha256_files
from llmfti.registry.base_models import weight_files


def load_verified_model(mv, base: dict, base_folder, encoder, *, device: str = "cpu", dtype=None, verify_weights: bool = True):
    import torch
    from transformers import AutoModelForCausalLM

    if verify_weights:
        # ~1 s per 500 MB on one core: cheap next to loading, and it catches a swapped checkpoint.
        actual = sha256_files(base_folder, weight_files(base_folder))
        if actual != base["weights_sha256"]:
            raise IncompatibleError(f"model {mv.ref}: weights of base model {base['name']} differ from the recorded sha256")
    if mv.adapter_sha256 and sha256_files(mv.adapter_dir) != mv.adapter_sha256:
        raise IncompatibleError(f"model {mv.ref}: adapter files differ from the recorded sha256")
    if dtype is None:
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(base_folder), dtype=dtype, local_files_only=True)
    except Exception as exc:  # assorted errors from transformers for unreadable folders
        raise ConfigError(f"cannot load base model {base['name']}: {exc}") from exc
    if len(encoder.tokenizer) > model.get_input_embeddings().weight.shape[0]:
        raise IncompatibleError(f"model {mv.ref}: the tokenizer has {len(encoder.tokenizer)} tokens, the model's embeddings only {model.get_input_embeddings().weight.shape[0]}")
    if mv.adapter_sha256:
        from peft import PeftModel

        from llmfti.models.peft_quiet import peft_quiet

        with peft_quiet():
            model = PeftModel.from_pretrained(model, str(mv.adapter_dir), is_trainable=False)
    return model.to(device).eval()
