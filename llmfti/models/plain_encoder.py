"""Run a plain sentence-transformers folder with transformers and tokenizers alone.

A folder whose pipeline is the plain one (a BERT encoder, mean pooling, optionally a Normalize module:
the embedded all-MiniLM-L6-v2 and most retrieval embedders) gets the same token ids, forward pass,
pooling and normalisation as `SentenceTransformer.encode(..., normalize_embeddings=True)`, bit for bit
in fp32 and bf16 (tests/test_plain_encoder.py compares them), without importing sentence-transformers.
That import pulls scikit-learn and scipy and costs ~2 s of every cold start that embeds (`llmfti
ingest`, `fg search`, `ask`, the service) on 2 cores. Anything else (another architecture, other
pooling, prompts, extra modules) returns None from `plain_pipeline` and keeps sentence-transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# Architectures whose transformers class was checked bit for bit against sentence-transformers.
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
    if model_config.get("model_type") not in SUPPORTED_MODEL_TYPES:
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


class PlainEncoder:
    """The plain pipeline of a folder, loaded with transformers' model class and the tokenizers library."""

    def __init__(self, folder: str | Path, settings: dict, device: str, dtype: str):
        import torch
        from tokenizers import Tokenizer
        from transformers import BertModel

        self._torch = torch
        tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        pad_id = tok.token_to_id(settings["pad_token"])
        if pad_id is None:
            raise ValueError(f"the tokenizer has no pad token {settings['pad_token']!r}")
        # What sentence-transformers asks of its tokenizer: pad to the batch's longest, truncate at max_seq_length.
        tok.enable_truncation(max_length=settings["max_length"])
        tok.enable_padding(pad_id=pad_id, pad_token=settings["pad_token"])
        self.tokenizer = tok
        self.model = BertModel.from_pretrained(str(folder), dtype=getattr(torch, dtype), local_files_only=True).to(device).eval()
        self.device = device
        self.normalizations = 2 if settings["normalize_module"] else 1  # the module's, then encode(normalize_embeddings=True)'s
        self.dimension = int(self.model.config.hidden_size)

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
            hidden = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
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
