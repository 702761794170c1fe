"""Loading the base model for training: device, dtype, attention kernel, LoRA, and the loss module.

- CUDA: bf16 weights and compute, flash_attention_2 when `flash_attn` is installed, else sdpa.
- CPU: fp32 by default (the tests compare losses exactly); precision 'bf16' keeps fp32 weights and
  runs the matmuls in bf16 under autocast (2x on CPUs with native bf16, measured on AVX512-BF16).
`LossModel` is the nn.Module that DDP and torch.compile see: it runs the decoder body and the
fused loss, so gradient sync hooks fire even though we never call the model's own forward.
"""

from __future__ import annotations

from pathlib import Path

from llmfti.errors import ConfigError, NotFoundError


def resolve_device(device: str):
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            import os

            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available", hint="use --set device=cpu")
    return torch.device(device)


def resolve_dtype(precision: str, device):
    """The weights' dtype: bf16 on CUDA (auto or bf16), else fp32 (CPU bf16 is autocast, see autocast_dtype)."""
    import torch

    if device.type == "cuda" and precision in ("bf16", "auto"):
        return torch.bfloat16
    return torch.float32


def autocast_dtype(precision: str, device):
    """bf16 autocast for CPU training with precision 'bf16'; None otherwise."""
    import torch

    return torch.bfloat16 if precision == "bf16" and device.type == "cpu" else None


def resolve_attn(attn: str, device) -> str:
    if attn != "auto":
        return attn
    if device.type == "cuda":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
    return "sdpa"


def resolve_base_model(base_model: str, home=None) -> str:
    """A local folder as given, else `<home>/artifacts/models/base/NAME/`, else the string itself (hub id)."""
    if Path(base_model).expanduser().is_dir():
        return str(Path(base_model).expanduser().resolve())
    from llmfti.home import ProjectHome

    folder = ProjectHome.at(home).models_dir / "base" / base_model
    if folder.is_dir():
        return str(folder)
    if "/" in base_model:  # looks like a hub id: let transformers try (works where a hub or cache is present)
        return base_model
    raise NotFoundError(
        f"base model {base_model!r} not found in {folder.parent}",
        hint="llmfti models pull-defaults (for SmolLM2-135M-Instruct) or give a local folder",
    )


def load_base(path: str, *, dtype, attn: str, device):
    """(model, tokenizer) with frozen weights on `device`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attn)
    model.to(device)
    model.config.use_cache = False  # see packing.py: a cache silently disables packed-sequence masking
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer


def add_lora(model, lora, *, seed: int):
    """Wrap `model` with a fresh LoRA adapter (seeded init)."""
    import torch
    from peft import get_peft_model

    from llmfti.models.peft_quiet import peft_quiet

    torch.manual_seed(seed)
    with peft_quiet():
        return get_peft_model(model, lora_config(lora, model))


def lora_config(lora, model):
    """peft's LoraConfig for `lora` (LoraSettings) on `model`."""
    from peft import LoraConfig

    extra, targets = {}, lora.target_modules
    if lora.last_layers:
        # Only the top layers adapted: backward stops at the lowest adapted layer (nothing below needs
        # a gradient), so a step costs a forward plus the backward of those layers only.
        n_layers = model.config.num_hidden_layers
        extra["layers_to_transform"] = list(range(max(0, n_layers - lora.last_layers), n_layers))
        if targets == "all-linear":  # peft takes a layer subset only with module names: the linear ones of a layer
            targets = linear_module_names(model)
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, task_type="CAUSAL_LM", **extra)


def linear_module_names(model) -> list[str]:
    """Names of the linear layers inside the decoder layers (what peft's all-linear adapts), e.g. q_proj."""
    import torch

    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear) and ".layers." in f".{name}"})


def _loss_module_class():
    import torch

    from llmfti.training.loss import causal_lm_loss

    class LossModel(torch.nn.Module):
        """forward(input_ids, position_ids, targets) -> (sum of token losses, loss tokens)."""

        def __init__(self, peft_model, *, fused: bool, chunk: int):
            super().__init__()
            self.peft_model = peft_model
            base = peft_model.get_base_model()
            self.body = base.get_decoder()
            self.head = base.get_output_embeddings()
            cfg = base.config
            # Models that post-process logits (softcapping, scaling) take the plain path: the fused loss
            # would silently compute the wrong thing for them.
            self.fused = fused and not getattr(cfg, "final_logit_softcapping", None) and not getattr(cfg, "logit_scale", None)
            self.chunk = chunk

        def forward(self, input_ids, position_ids, targets):
            if not self.fused:
                logits = self.peft_model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits
                return causal_lm_loss(logits, torch.nn.Identity(), targets, fused=False)
            hidden = self.body(input_ids=input_ids, position_ids=position_ids, use_cache=False).last_hidden_state
            return causal_lm_loss(hidden, self.head, targets, chunk=self.chunk, fused=True)

    return LossModel


def build_loss_model(peft_model, *, fused: bool = True, chunk: int = 4096):
    return _loss_module_class()(peft_model, fused=fused, chunk=chunk)


def compile_layers(peft_model) -> None:
    """Regional compilation: each decoder layer separately (one graph reused N times compiles fast)."""
    import torch

    body = peft_model.get_base_model().get_decoder()
    for layer in body.layers:
        layer.compile(dynamic=True)
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
