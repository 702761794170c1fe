"""Decode in llama.cpp after a transformers prefill (`backend.decode: llama_cpp`, CPU, batch of one).

Why: on 2 cores transformers prefills a ~600-token RAG prompt 3x faster than llama.cpp, but decodes
at about half its speed (each step is hundreds of small PyTorch ops; bench/generation.md). So the
prompt is prefilled by transformers, from the encoder's exact ids as always, and its keys and values
are written into a llama.cpp sequence state (`llama_state_seq_set_data`); llama.cpp then decodes from
there with the model version's GGUF (the embedded default ships one). Measured side by side
(bench/generation.md, trial 12): 103 tok/s, 1.06x llama.cpp's own decode, with the prefill still 2.8x
faster than llama.cpp's. llama.cpp must be built without OpenMP: an OpenMP build shares torch's libgomp
and decodes ~1.4x slower here (the decoder logs a warning).

The sequence state is llama.cpp's internal format (llama-cpp-python 0.3.36): a header, the stream
count, the cell count, per cell (position, 1, sequence 0), a `v_trans` flag, the layer count; per
layer the K type, its row size and the rows (F16, one per cell); per layer the V type, element size,
row width and V transposed. `_Layout.read` takes it apart from a state llama.cpp wrote itself and
refuses any other shape. Llama-architecture GGUFs store q/k with the two RoPE halves of each head
interleaved (the converter permutes the weights), so each head's keys are permuted the same way.

Checked at load (`LlamaCppDecoder.check`): llama.cpp prefills a probe prompt itself and its keys and
values must match what transformers computed for the same ids (correlation > 0.99 in every layer); a GGUF that is not
this model, or a format this code misreads, is refused before any request is served.
"""

from __future__ import annotations

import ctypes
import logging
import struct
from dataclasses import dataclass

from llmfti.errors import ConfigError

log = logging.getLogger(__name__)

F16 = 1  # ggml_type of the KV cache llama.cpp allocates by default
# bf16 keys against llama.cpp's from the same (dequantized) weights correlate at 0.997-0.99999 per layer;
# another model's, or keys whose RoPE halves were not interleaved, do not come close.
MIN_CORRELATION = 0.99


def llama_cpp_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def llama_cpp_system_info() -> bytes:
    import llama_cpp

    return llama_cpp.llama_print_system_info()


@dataclass(frozen=True)
class _Layout:
    header: bytes  # what llama.cpp writes before the stream count: copied as it is
    v_trans: int
    layers: int
    row: int  # values per cell and layer: kv heads x head dim

    @classmethod
    def read(cls, state: bytes, cells: int) -> _Layout:
        """The layout of a state llama.cpp wrote for `cells` tokens of sequence 0; ConfigError if it
        is not the one `state_bytes` writes."""
        def bad(why: str) -> ConfigError:
            return ConfigError(f"llama.cpp's sequence state has an unexpected layout ({why}); this llmfti supports "
                               "llama-cpp-python 0.3.x: use backend.decode: torch")

        if len(state) < 24:
            raise bad("too short")
        header = state[:8]
        streams, count = struct.unpack_from("<II", state, 8)
        if (streams, count) != (1, cells):
            raise bad(f"{streams} streams, {count} cells")
        offset = 16 + 12 * cells
        v_trans, layers = struct.unpack_from("<II", state, offset)
        k_type, row_bytes = struct.unpack_from("<iQ", state, offset + 8)
        if k_type != F16 or v_trans not in (0, 1):
            raise bad(f"K type {k_type}, v_trans {v_trans}")
        layout = cls(header, v_trans, layers, row_bytes // 2)
        if len(state) != layout.size(cells):
            raise bad(f"{len(state)} bytes, expected {layout.size(cells)}")
        return layout

    def size(self, cells: int) -> int:
        # Each layer's K and V block: a 12-byte header ((type, row size as u64), or for transposed V
        # (type, element size, width)) and F16 values for every cell.
        return 16 + 12 * cells + 8 + 2 * self.layers * (12 + cells * self.row * 2)


def state_bytes(layout: _Layout, keys: list, values: list, cells: int, head_dim: int, interleave_rope: bool):
    """A llama.cpp sequence state (a numpy uint8 array) holding `cells` positions of per-layer
    keys/values, each a tensor [kv_heads, >= cells, head_dim] (one row of a transformers static cache).
    Built with one conversion per tensor kind into a preallocated buffer: ~17 MB for 750 positions."""
    import numpy as np
    import torch

    out = np.empty(layout.size(cells), dtype=np.uint8)
    cells_at = 16 + 12 * cells
    out[:8] = np.frombuffer(layout.header, dtype=np.uint8)
    out[8:16] = np.frombuffer(struct.pack("<II", 1, cells), dtype=np.uint8)
    out[16:cells_at] = np.array([[p, 1, 0] for p in range(cells)], dtype=np.uint32).view(np.uint8).ravel()
    out[cells_at:cells_at + 8] = np.frombuffer(struct.pack("<II", layout.v_trans, layout.layers), dtype=np.uint8)
    k = torch.stack([t[:, :cells] for t in keys])  # layers, kv heads, cells, head dim
    heads = k.shape[1]
    if interleave_rope:  # transformers keeps RoPE's halves apart; llama's GGUF pairs them up
        k = k.reshape(layout.layers, heads, cells, 2, head_dim // 2).transpose(-1, -2)
    k = k.reshape(layout.layers, heads, cells, head_dim).transpose(1, 2).reshape(layout.layers, -1)
    v = torch.stack([t[:, :cells] for t in values]).transpose(1, 2).reshape(layout.layers, cells, heads * head_dim)
    v = v.transpose(1, 2).reshape(layout.layers, -1) if layout.v_trans else v.reshape(layout.layers, -1)
    block = 12 + cells * layout.row * 2
    blocks = out[cells_at + 8:].reshape(2 * layout.layers, block)
    v_header = struct.pack("<iII", F16, 2, layout.row) if layout.v_trans else struct.pack("<iQ", F16, layout.row * 2)
    blocks[:layout.layers, :12] = np.frombuffer(struct.pack("<iQ", F16, layout.row * 2), dtype=np.uint8)
    blocks[layout.layers:, :12] = np.frombuffer(v_header, dtype=np.uint8)
    blocks[:layout.layers, 12:] = k.to(torch.float16).contiguous().numpy().view(np.uint8)
    blocks[layout.layers:, 12:] = v.to(torch.float16).contiguous().numpy().view(np.uint8)
    return out


class LlamaCppDecoder:
    """One llama.cpp context that continues sequences transformers prefilled. Not thread-safe: the
    generator's worker thread is its only caller."""

    def __init__(self, gguf_path, model_config, *, n_ctx: int = 4096, threads: int | None = None, lora_path=None):
        if not llama_cpp_installed():
            raise ConfigError("backend.decode: llama_cpp needs llama-cpp-python",
                              hint="pip install 'llmfti[llama-cpp]' (a native build of a few minutes), or backend.decode: torch")
        import torch
        from llama_cpp import Llama

        extra = {} if lora_path is None else {"lora_path": str(lora_path), "lora_scale": 1.0}
        self.llm = Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_threads=threads or torch.get_num_threads(),
                         n_batch=512, verbose=False, **extra)
        arch = self.llm.metadata.get("general.architecture")
        if arch != "llama":
            self.llm.close()
            raise ConfigError(f"backend.decode: llama_cpp supports llama-architecture GGUFs; {gguf_path} is {arch!r}")
        self.n_ctx = n_ctx
        self.openmp = b"OPENMP = 1" in llama_cpp_system_info()
        if self.openmp:
            log.warning("llama.cpp was built with OpenMP: it shares libgomp with torch, and once several threads own OpenMP "
                        "teams (the generator's worker, the loading thread) libgomp stops spinning at ggml's barriers, so "
                        "decoding runs ~1.4x slower than it can; reinstall it with CMAKE_ARGS=-DGGML_OPENMP=OFF (README)")
        self.head_dim = model_config.hidden_size // model_config.num_attention_heads
        self.layout: _Layout | None = None

    def _state(self) -> bytes:
        import llama_cpp

        size = llama_cpp.llama_state_seq_get_size(self.llm.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        got = llama_cpp.llama_state_seq_get_data(self.llm.ctx, buf, size, 0)
        return bytes(buf[:got])

    def _clear(self) -> None:
        import llama_cpp

        self.llm.reset()
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.llm.ctx), True)

    def check(self, model, probe_ids: list[int]) -> float:
        """Prefill `probe_ids` in both engines; the keys and values must agree (returns the lowest
        correlation over layers). Learns the state layout on the way."""
        import numpy as np
        import torch
        from transformers import StaticCache

        from llmfti.models.transformers_generator import cache_kw

        n = len(probe_ids)
        self._clear()
        self.llm.eval(probe_ids)
        own = self._state()
        self.layout = _Layout.read(own, n)
        with torch.inference_mode():
            cache = StaticCache(config=model.config, max_cache_len=n)
            model(input_ids=torch.tensor([probe_ids]), **cache_kw(model, cache), cache_position=torch.arange(n), use_cache=True)
        shape = (self.layout.layers, self.layout.row)
        if shape != (len(cache.layers), cache.layers[0].keys.shape[1] * self.head_dim):
            raise ConfigError(f"the GGUF has {shape[0]} layers of {shape[1]} key values per position; the model "
                              f"{len(cache.layers)} of {cache.layers[0].keys.shape[1] * self.head_dim}: it is not this model's GGUF")
        mine = state_bytes(self.layout, [c.keys[0] for c in cache.layers], [c.values[0] for c in cache.layers], n, self.head_dim, True).tobytes()
        start = 16 + 12 * n + 8
        span = 12 + n * self.layout.row * 2
        lowest = 1.0
        for layer in range(2 * self.layout.layers):  # keys then values, each block behind its 12-byte header
            a = np.frombuffer(own, dtype=np.float16, count=n * self.layout.row, offset=start + layer * span + 12).astype(np.float32)
            b = np.frombuffer(mine, dtype=np.float16, count=n * self.layout.row, offset=start + layer * span + 12).astype(np.float32)
            lowest = min(lowest, float(np.corrcoef(a, b)[0, 1]))
        if not lowest > MIN_CORRELATION:
            raise ConfigError(f"the GGUF's keys and values do not match the model's (correlation {lowest:.4f}): "
                              "it is not this model version's weights; use backend.decode: torch")
        return lowest

    def fits(self, prompt_tokens: int, max_new: int) -> bool:
        return prompt_tokens + max_new <= self.n_ctx

    def decode(self, keys: list, values: list, cells: int, first: int, max_new: int, eos: int, stop, on_token=None) -> list[int]:
        """Greedy tokens after a prompt of `cells` tokens whose first generated token is `first`
        (from transformers' prefill logits), up to `max_new` tokens or `eos` (included)."""
        import llama_cpp
        import numpy as np

        if self.layout is None:
            raise RuntimeError("LlamaCppDecoder.check must run before decode")
        self._clear()
        data = state_bytes(self.layout, keys, values, cells, self.head_dim, True)
        pointer = data.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        if llama_cpp.llama_state_seq_set_data(self.llm.ctx, pointer, data.size, 0) != data.size:
            raise RuntimeError("llama.cpp refused the prefilled sequence state")
        self.llm.n_tokens = cells
        tokens, token = [], first
        vocab = self.llm.n_vocab()
        while True:
            tokens.append(token)
            if on_token is not None:
                on_token(token)
            if token == eos or len(tokens) >= max_new or stop():
                return tokens
            self.llm.eval([token])
            token = int(np.argmax(np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(vocab,))))

    def close(self) -> None:
        self.llm.close()


# peft's module names in a Llama model -> llama.cpp's tensor names (gguf-py's tensor map for LLM_ARCH_LLAMA)
LORA_TARGETS = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
                "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def write_lora_gguf(peft_model, path) -> int:
    """Write the active LoRA adapter of a peft Llama model as a llama.cpp LoRA GGUF; returns the number
    of adapted modules. Each module's scaling is folded into its B matrix (the file's alpha is 0, which
    llama.cpp reads as scale 1), and the B rows of q and k are permuted like the GGUF's q/k weights (RoPE
    halves interleaved per head). `LlamaCppDecoder.check` then holds llama.cpp's keys and values with
    the adapter to transformers' own, so a mistake here is refused at load."""
    import re

    import gguf

    config = peft_model.base_model.model.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    adapter = peft_model.active_adapter
    if getattr(peft_model.peft_config[adapter], "use_dora", False):
        raise ConfigError("backend.decode: llama_cpp cannot run a DoRA adapter; use backend.decode: torch")
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 0.0)
    count = 0
    for name, module in peft_model.named_modules():
        if not hasattr(module, "lora_A") or adapter not in module.lora_A:
            continue
        match = re.search(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)$", name)
        if match is None or match.group(2) not in LORA_TARGETS:
            raise ConfigError(f"backend.decode: llama_cpp cannot carry a LoRA on {name}; it takes "
                              f"{', '.join(LORA_TARGETS)} of the decoder layers")
        layer, target = int(match.group(1)), match.group(2)
        a = module.lora_A[adapter].weight.detach().float()
        b = module.lora_B[adapter].weight.detach().float() * module.scaling[adapter]
        if target in ("q_proj", "k_proj"):
            n = heads if target == "q_proj" else kv_heads
            b = b.reshape(n, 2, b.shape[0] // n // 2, b.shape[1]).swapaxes(1, 2).reshape(b.shape)
        base = f"blk.{layer}.{LORA_TARGETS[target]}.weight"
        writer.add_tensor(f"{base}.lora_a", a.contiguous().numpy())
        writer.add_tensor(f"{base}.lora_b", b.contiguous().numpy())
        count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return count
