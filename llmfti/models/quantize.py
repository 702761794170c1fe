"""Weight-only int8 / int4 for CPU decoding: decode is bound by memory bandwidth, not arithmetic.

A decode step of a 135M model reads every weight once per token (270 MB in bf16), so on a CPU its
speed is the memory bandwidth divided by the model's bytes. Int8 weights (per output channel,
symmetric) halve the bytes; int4 (groups of 32 along the input, asymmetric: the scheme of
llama.cpp's Q4_1) quarter them, at a larger numeric error. Prefill, which is compute-bound, keeps the original weights: a linear
layer uses the int8 copy only when it multiplies a few rows (decode of up to `DECODE_ROWS`
sequences at once), so prompts are encoded exactly as before and only generated tokens go through
the quantized path.

    quantize_for_decode(model)        # in place; LoRA adapters must be merged first (merge_and_unload)

The same token ids go in (the encoder's prompt), so the prompt fingerprint stays true; greedy outputs
can differ from the unquantized model where two candidate tokens are nearly tied.
"""

from __future__ import annotations

DECODE_ROWS = 16  # at most this many rows (tokens x batch) per matmul take the int8 path


def _int8_linear_class():
    import torch

    class Int8DecodeLinear(torch.nn.Module):
        """nn.Linear with an int8 copy of its weight for small-M (decode) matmuls."""

        def __init__(self, linear: torch.nn.Linear):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.weight = linear.weight  # the original: prefill, and any dtype the int8 kernel lacks
            self.bias = linear.bias
            w = linear.weight.detach().float()
            scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            self.register_buffer("qweight", (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8).contiguous(), persistent=False)
            self.register_buffer("qscale", scale.to(linear.weight.dtype), persistent=False)

        def forward(self, x):
            rows = x.numel() // x.shape[-1]
            if rows > DECODE_ROWS or x.device.type != "cpu" or x.dtype != self.qscale.dtype:
                return torch.nn.functional.linear(x, self.weight, self.bias)
            y = torch.ops.aten._weight_int8pack_mm(x.reshape(rows, x.shape[-1]).contiguous(), self.qweight, self.qscale)
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias

    return Int8DecodeLinear


INT4_GROUP = 32


def _int4_linear_class():
    import torch

    class Int4DecodeLinear(torch.nn.Module):
        """nn.Linear with an int4 (group-wise, asymmetric) copy of its weight for small-M matmuls."""

        def __init__(self, linear: torch.nn.Linear):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.weight, self.bias = linear.weight, linear.bias
            n, k = linear.weight.shape
            w = linear.weight.detach().float().reshape(n, k // INT4_GROUP, INT4_GROUP)
            low, high = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
            scale = ((high - low) / 15).clamp(min=1e-8)
            q = ((w - low) / scale).round().clamp(0, 15).to(torch.int32).reshape(n, k)
            zero = low + 8 * scale  # the kernel computes (q - 8) * scale + zero
            self.register_buffer("qweight", torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2), persistent=False)
            sz = torch.stack([scale.squeeze(-1), zero.squeeze(-1)], dim=-1).transpose(0, 1).contiguous()
            self.register_buffer("qscale_zero", sz.to(linear.weight.dtype), persistent=False)

        def forward(self, x):
            rows = x.numel() // x.shape[-1]
            if rows > DECODE_ROWS or x.device.type != "cpu" or x.dtype != self.qscale_zero.dtype:
                return torch.nn.functional.linear(x, self.weight, self.bias)
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(x.reshape(rows, x.shape[-1]).contiguous(), self.qweight, INT4_GROUP, self.qscale_zero)
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias

    return Int4DecodeLinear


def int8_supported() -> bool:
    """Whether this torch has the CPU int8 weight-only kernel."""
    import torch

    return hasattr(torch.ops.aten, "_weight_int8pack_mm")


def int4_supported() -> bool:
    import torch

    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu") and hasattr(torch.ops.aten, "_convert_weight_to_int4pack_for_cpu")


def quantize_for_decode(model, bits: int = 8) -> int:
    """Give every nn.Linear of `model` (the output head included) an int8 or int4 decode path;
    returns how many layers got one (0 when this torch lacks the kernel)."""
    import torch

    if bits not in (8, 4):
        raise ValueError("bits must be 8 or 4")
    if not (int8_supported() if bits == 8 else int4_supported()):
        return 0
    cls = _int8_linear_class() if bits == 8 else _int4_linear_class()
    count = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear and (bits == 8 or child.in_features % INT4_GROUP == 0):
                setattr(module, name, cls(child))
                count += 1
    return count
