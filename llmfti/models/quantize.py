"""Weight-only int8 for CPU decoding: decode is bound by memory bandwidth, not arithmetic.

A decode step of a 135M model reads every weight once per token (270 MB in bf16), so on a CPU its
speed is the memory bandwidth divided by the model's bytes. Int8 weights (per output channel,
symmetric) halve the bytes. Prefill, which is compute-bound, keeps the original weights: a linear
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
            y = torch.ops.aten._weight_int8pack_mm(x.reshape(rows, x.shape[-1]), self.qweight, self.qscale)
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias

    return Int8DecodeLinear


def int8_supported() -> bool:
    """Whether this torch has the CPU int8 weight-only kernel."""
    import torch

    return hasattr(torch.ops.aten, "_weight_int8pack_mm")


def quantize_for_decode(model) -> int:
    """Give every nn.Linear of `model` (the output head included) an int8 decode path; returns how many."""
    import torch

    if not int8_supported():
        return 0
    cls = _int8_linear_class()
    count = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(module, name, cls(child))
                count += 1
    return count
