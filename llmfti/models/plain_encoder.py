"""Run a plain sentence-transformers folder with PyTorch and the tokenizers library alone.

A folder whose pipeline is the plain one (a BERT encoder in `model.safetensors`, mean pooling, optionally
a Normalize module: the embedded all-MiniLM-L6-v2 and most retrieval embedders) gets the same token ids,
forward pass, pooling and normalisation as `SentenceTransformer.encode(..., normalize_embeddings=True)`,
bit for bit in fp32 and bf16 (tests/test_plain_encoder.py compares them), without importing
sentence-transformers or transformers. On 2 cores the sentence-transformers import (scikit-learn, scipy)
cost ~2 s and transformers' BertModel ~3 s of every cold start that embeds (`llmfti ingest`, `fg search`,
`ask`, the service); the forward pass itself is `llmfti.models.bert_encoder`. Anything else (another
architecture, other pooling, prompts, extra modules, weights not in safetensors) returns None from
`plain_pipeline` and keeps sentence-transformers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# Architectures whose forward pass (llmfti.models.bert_encoder) was checked bit for bit against sentence-transformers.
SUPPORTED_MODEL_TYPES = {"bert"}
_MEAN_ONLY = {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False,
              "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
              "pooling_mode_lasttoken": False}
_KNOWN_ST_KEYS = {"max_seq_length", "do_lower_case"}


def _read(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def plain_pipeline(folder: str | Path) -> dict | None:
    """{'max_length', 'pad_token', 'normalize_module'} when `folder` holds the plain pipeline, else None."""
    root = Path(folder)
    modules, st_config, model_config = _read(root / "modules.json"), _read(root / "sentence_bert_config.json"), _read(root / "config.json")
    if not (isinstance(modules, list) and isinstance(st_config, dict) and isinstance(model_config, dict)) or not (root / "tokenizer.json").is_file():
        return None
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]) or modules[0].get("path", "") != "":
        return None
    pooling = _read(root / modules[1].get("path", "") / "config.json")
    if not isinstance(pooling, dict) or any(bool(pooling.get(k, False)) != v for k, v in _MEAN_ONLY.items()):
        return None
    if pooling.get("include_prompt", True) is not True:
        return None
    st_meta = _read(root / "config_sentence_transformers.json") or {}
    if st_meta.get("prompts") or st_meta.get("default_prompt_name") or set(st_config) - _KNOWN_ST_KEYS or st_config.get("do_lower_case"):
        return None
    if not _reproduced_bert(model_config) or not (root / "model.safetensors").is_file():
        return None
    max_length = st_config.get("max_seq_length")
    tok_config = _read(root / "tokenizer_config.json") or {}
    limits = [int(v) for v in (tok_config.get("model_max_length"), model_config.get("max_position_embeddings")) if isinstance(v, int)]
    if not isinstance(max_length, int) or max_length < 1 or any(max_length > lim for lim in limits):
        return None
    pad_token = tok_config.get("pad_token") or (_read(root / "special_tokens_map.json") or {}).get("pad_token")
    if not isinstance(pad_token, str):
        return None
    return {"max_length": max_length, "pad_token": pad_token, "normalize_module": kinds[-1] == "Normalize"}


def _reproduced_bert(config: dict) -> bool:
    """An encoder-only BERT with absolute positions and exact GELU: what `bert_encoder.BertEncoder` computes."""
    sizes = [config.get(k) for k in ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "vocab_size", "max_position_embeddings")]
    if not all(isinstance(v, int) and v > 0 for v in sizes):
        return False  # transformers would fill in its defaults; a folder that relies on them keeps the libraries
    return (config.get("model_type") in SUPPORTED_MODEL_TYPES and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and not config.get("is_decoder") and not config.get("add_cross_attention")
            and sizes[0] % sizes[1] == 0)


class PlainEncoder:
    """The plain pipeline of a folder: its BERT run by `bert_encoder.BertEncoder`, tokens by the tokenizers library."""

    def __init__(self, folder: str | Path, settings: dict, device: str, dtype: str):
        import torch
        from tokenizers import Tokenizer

        from llmfti.models.bert_encoder import BertEncoder

        self._torch = torch
        tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        pad_id = tok.token_to_id(settings["pad_token"])
        if pad_id is None:
            raise ValueError(f"the tokenizer has no pad token {settings['pad_token']!r}")
        # What sentence-transformers asks of its tokenizer: pad to the batch's longest, truncate at max_seq_length.
        tok.enable_truncation(max_length=settings["max_length"])
        tok.enable_padding(pad_id=pad_id, pad_token=settings["pad_token"])
        self.tokenizer = tok
        config = json.loads((Path(folder) / "config.json").read_text())
        self.model = BertEncoder.from_folder(folder, config, getattr(torch, dtype), device)
        self.device = device
        self.normalizations = 2 if settings["normalize_module"] else 1  # the module's, then encode(normalize_embeddings=True)'s
        self.dimension = int(config["hidden_size"])

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised float32 vectors, in input order, for one batch."""
        torch = self._torch
        # sentence-transformers runs a batch longest first (np.argsort of negated lengths); the same
        # order keeps every row in the same place of the same matrix products.
        order = np.argsort([-len(t) for t in texts])
        enc = self.tokenizer.encode_batch([texts[i] for i in order])
        ids = torch.tensor([e.ids for e in enc], device=self.device)
        mask = torch.tensor([e.attention_mask for e in enc], device=self.device)
        types = torch.tensor([e.type_ids for e in enc], device=self.device)
        with torch.inference_mode():
            hidden = self.model(ids, mask, types)
            # sentence-transformers' mean pooling: sums accumulated in float32, the mean cast back.
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            total = (hidden * weights).sum(dim=1, dtype=torch.float32)
            count = torch.clamp(weights.sum(dim=1, dtype=torch.float32), min=1e-9)
            vecs = (total / count).to(hidden.dtype)
            for _ in range(self.normalizations):
                vecs = torch.nn.functional.normalize(vecs, p=2, dim=-1)
        out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
        out[order] = vecs.float().cpu().numpy()
        return out
