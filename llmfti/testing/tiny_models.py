"""Tiny, deterministic model doubles for tests: a byte-level BPE tokenizer with a ChatML chat template
(EOS `<|im_end|>`, a distinct pad `<|pad|>`), a 2-layer random Llama, and a LoRA adapter for it.

    from llmfti.testing.tiny_models import tiny_tokenizer, save_tiny_model
    tok = tiny_tokenizer()                      # in memory, ~50 ms
    folder = save_tiny_model(tmp_path / "tiny")  # config.json, model.safetensors, tokenizer files

Everything is built in code (no downloads) and is identical on every run and machine.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_CORPUS = [
    "The with statement wraps a block with a context manager; __exit__ always runs.",
    "A for loop iterates over an iterable. A while loop repeats while a condition holds.",
    "Generators yield values lazily, one at a time, and keep their state between calls.",
    "Answer the question using only the numbered contexts and cite them like [1] or [2].",
    "Question: what does yield do? Contexts: system user assistant helpful answer.",
]


@lru_cache(maxsize=4)
def _tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # Byte-level: every string encodes (no unknown tokens), as with real LLM tokenizers.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    return tok.to_str()


def tiny_tokenizer(vocab_size: int = 400, chat_template: str = CHATML_TEMPLATE):
    """A PreTrainedTokenizerFast with a chat template, eos `<|im_end|>` and pad `<|pad|>` (pad != eos)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json(vocab_size)),
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>", "<|endoftext|>"],
    )
    fast.chat_template = chat_template
    return fast


def tiny_llama_config(vocab_size: int, *, initializer_range: float = 0.02, **overrides):
    """The tiny Llama's config. The default initializer_range (0.02) caps logits near +-0.6 behind the
    final norm: fine for plumbing tests, too weak to learn in a few steps; training tests pass 0.2."""
    from transformers import LlamaConfig

    base = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        vocab_size=vocab_size, max_position_embeddings=2048, initializer_range=initializer_range,
    )
    base.update(overrides)
    return LlamaConfig(**base)


def tiny_llama(vocab_size: int, seed: int = 0, *, initializer_range: float = 0.02, **overrides):
    """A 2-layer random LlamaForCausalLM (hidden 32): loads and generates in milliseconds."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_llama_config(vocab_size, initializer_range=initializer_range, **overrides)).eval()


def save_tiny_model(dest: str | Path, seed: int = 0, *, initializer_range: float = 0.02) -> Path:
    """A complete local model folder: tiny Llama weights + tiny tokenizer (with chat template).
    Pass initializer_range=0.2 for a model that learns in a few fine-tuning steps."""
    dest = Path(dest)
    tok = tiny_tokenizer()
    model = tiny_llama(len(tok), seed=seed, initializer_range=initializer_range)
    model.config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(dest, safe_serialization=True)
    tok.save_pretrained(dest)
    return dest


def save_tiny_adapter(model_dir: str | Path, dest: str | Path, seed: int = 1, r: int = 4) -> Path:
    """A LoRA adapter (peft) for the tiny model in `model_dir`, with non-zero weights so it matters."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(model_dir))
    peft_model = get_peft_model(base, LoraConfig(r=r, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(str(dest))
    return Path(dest)
