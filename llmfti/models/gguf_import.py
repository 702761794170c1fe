"""Import a GGUF checkpoint ONCE into a normal safetensors model folder.

transformers de-quantizes GGUF to float on every load (~25 s for SmolLM2-135M on 2 cores); after
this import, loading the saved folder takes ~3 s. The model is built from the GGUF's config without
`quantization_config`, so the saved folder is a plain float checkpoint any tool can read.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from llmfti.errors import ConfigError


def import_gguf(gguf_path: str | Path, dest: str | Path, dtype: str = "float32") -> Path:
    """Write `dest/` (config.json, model.safetensors, tokenizer files, llmfti_source.json).
    Writes into a temporary sibling folder and renames it, so an interrupted import leaves nothing half-done."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise ConfigError(f"GGUF file not found: {gguf_path}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=getattr(torch, dtype))
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except Exception as exc:  # transformers raises assorted errors for unsupported GGUF files
        raise ConfigError(f"cannot read GGUF {gguf_path}: {exc}") from exc
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:
        raise ConfigError(f"GGUF import of {gguf_path}: state dict mismatch (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=dest.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(tmp)
        (tmp / "llmfti_source.json").write_text(json.dumps({"source": str(gguf_path), "format": "gguf", "dtype": dtype}, indent=2))
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
