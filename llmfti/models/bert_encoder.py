"""A BERT encoder's forward pass in plain PyTorch, loaded from a folder's `model.safetensors`.

What `transformers.BertModel(...)(...).last_hidden_state` computes for an encoder-only BERT with absolute
positions and exact GELU, in inference, op for op: the same embedding sums in the same order, the same
`scaled_dot_product_attention` call (no mask when nothing in the batch is padded, else a boolean mask over
the keys, as transformers' sdpa path builds it), the same residual LayerNorms. The plain encoder
(`llmfti.models.plain_encoder`) runs it instead of transformers' class because importing that class costs
~3 s of every cold start that embeds on 2 cores (transformers' attention, masking, hub-kernel and
generation machinery load with it; `import torch` alone is ~1.4 s), against a forward pass of a few lines.
tests/test_plain_encoder.py holds the vectors to sentence-transformers' bit for bit, in fp32 and bf16.
`plain_encoder.plain_pipeline` says which folders qualify; anything else keeps the libraries.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


class _Embeddings(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"], padding_idx=c.get("pad_token_id"))
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
        self.token_type_embeddings = nn.Embedding(c.get("type_vocab_size", 2), c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c.get("layer_norm_eps", 1e-12))
        self.register_buffer("position_ids", torch.arange(c["max_position_embeddings"]).expand((1, -1)), persistent=False)

    def forward(self, input_ids, token_type_ids):
        # transformers' order: words + token types, then + positions.
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(self.position_ids[:, : input_ids.shape[1]])
        return self.LayerNorm(x)


class _SelfAttention(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        hidden = c["hidden_size"]
        self.head_size = hidden // c["num_attention_heads"]
        self.scaling = self.head_size ** -0.5
        self.query, self.key, self.value = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)

    def forward(self, x, mask):
        shape = (*x.shape[:-1], -1, self.head_size)
        q, k, v = (proj(x).view(*shape).transpose(1, 2) for proj in (self.query, self.key, self.value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=self.scaling, is_causal=False)
        return out.transpose(1, 2).contiguous().reshape(*x.shape[:-1], -1).contiguous()


class _Output(nn.Module):
    """dense -> + residual -> LayerNorm (BertSelfOutput and BertOutput are this shape)."""

    def __init__(self, c: dict, inner: int):
        super().__init__()
        self.dense = nn.Linear(inner, c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c.get("layer_norm_eps", 1e-12))

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Output(c, c["hidden_size"])

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class _Intermediate(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    def forward(self, x):
        return F.gelu(self.dense(x))


class _Layer(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _Output(c, c["intermediate_size"])

    def forward(self, x, mask):
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class _Encoder(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c["num_hidden_layers"]))


class BertEncoder(nn.Module):
    """BERT without its pooler; parameter names as in transformers' checkpoints, so they load as stored."""

    def __init__(self, config: dict):
        super().__init__()
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)

    @classmethod
    def from_folder(cls, folder: str | Path, config: dict, dtype: torch.dtype, device: str) -> "BertEncoder":
        from safetensors.torch import load_file

        model = cls(config)
        weights = load_file(str(Path(folder) / "model.safetensors"))
        # Old TensorFlow-era checkpoints name LayerNorm parameters gamma/beta (transformers renames them too).
        weights = {k.removeprefix("bert.").replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
                   for k, v in weights.items()}
        missing, _ = model.load_state_dict(weights, strict=False)  # the pooler's weights and stored buffers stay unused
        if missing:
            raise ValueError(f"model.safetensors lacks {len(missing)} BERT weight(s), e.g. {missing[0]}")
        return model.to(device=device, dtype=dtype).eval()

    def forward(self, input_ids, attention_mask, token_type_ids):
        x = self.embeddings(input_ids, token_type_ids)
        # As transformers' sdpa path: no mask when no token is padded, else True for keys that take part.
        mask = None if bool(attention_mask.all()) else attention_mask.bool()[:, None, None, :].expand(x.shape[0], 1, x.shape[1], x.shape[1])
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x
