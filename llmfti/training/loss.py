"""Causal-LM loss that never materialises the full [tokens, vocab] logits.

The model body gives hidden states [B, L, H]; only the loss-bearing positions (targets != -100, often
well under half of a packed SFT row) are gathered, and the output projection + cross-entropy run over
chunks of them. `FusedLinearCrossEntropy` computes the gradient with respect to the hidden states
(and the head weight, only if it is trainable) inside the forward pass, chunk by chunk, so backward
keeps just a [n, H] tensor instead of [n, V] logits: for a 128k vocabulary and 16k tokens that is
~8 GiB of fp32 logits (plus their softmax) saved. Logits are computed in the compute dtype and
upcast to fp32 for the softmax, as HF's own loss does.

`causal_lm_loss` returns the SUM of token losses; the trainer divides by the token count of the
whole optimizer step (across grad-accumulation and processes), which gives every token the same
weight whatever batch it landed in.
"""

from __future__ import annotations

from llmfti.training.data import IGNORE


def _fused_function():
    import torch

    class FusedLinearCrossEntropy(torch.autograd.Function):
        """sum_i CE(h_i @ W.T, y_i), computing dL/dh (and dL/dW when needed) in forward, chunk by chunk."""

        @staticmethod
        def forward(ctx, hidden, weight, targets, chunk: int):
            need_w = weight.requires_grad
            grad_h = torch.empty_like(hidden)
            grad_w = torch.zeros_like(weight, dtype=torch.promote_types(weight.dtype, torch.float32)) if need_w else None
            acc = torch.promote_types(hidden.dtype, torch.float32)  # bf16 -> fp32 softmax; fp64 stays fp64
            total = torch.zeros((), dtype=acc, device=hidden.device)
            for s in range(0, hidden.shape[0], chunk):
                h, y = hidden[s : s + chunk], targets[s : s + chunk]
                logits = (h @ weight.t()).to(acc)
                lse = torch.logsumexp(logits, dim=-1)
                total += (lse - logits.gather(1, y[:, None]).squeeze(1)).sum()
                # d/dlogits of sum CE = softmax - onehot; reuse the logits buffer to avoid a second [chunk, V].
                g = logits.sub_(lse[:, None]).exp_()
                g[torch.arange(g.shape[0], device=g.device), y] -= 1.0
                g = g.to(hidden.dtype)
                grad_h[s : s + chunk] = g @ weight
                if need_w:
                    grad_w += (g.t() @ h).to(grad_w.dtype)
            ctx.save_for_backward(grad_h, grad_w if need_w else torch.empty(0))
            ctx.need_w = need_w
            ctx.weight_dtype = weight.dtype
            return total

        @staticmethod
        def backward(ctx, grad_out):
            grad_h, grad_w = ctx.saved_tensors
            gh = grad_h * grad_out.to(grad_h.dtype)
            gw = (grad_w * grad_out).to(ctx.weight_dtype) if ctx.need_w else None
            return gh, gw, None, None

    return FusedLinearCrossEntropy


_FUSED = None


def fused_linear_cross_entropy(hidden, weight, targets, chunk: int = 4096):
    """Sum of cross-entropies of `hidden @ weight.T` against `targets` ([n, H], [V, H], [n]); no [n, V] kept."""
    global _FUSED
    if _FUSED is None:
        _FUSED = _fused_function()
    return _FUSED.apply(hidden, weight, targets, chunk)


def chunked_module_cross_entropy(hidden, head, targets, chunk: int = 4096):
    """Same sum for any head module (e.g. a LoRA-wrapped lm_head): per-chunk checkpointing, so only
    one chunk's logits live at a time in forward and backward."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    def part(h, y):
        logits = head(h)
        return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), y, reduction="sum")

    total = torch.zeros((), dtype=torch.promote_types(hidden.dtype, torch.float32), device=hidden.device)
    for s in range(0, hidden.shape[0], chunk):
        total = total + checkpoint(part, hidden[s : s + chunk], targets[s : s + chunk], use_reentrant=False)
    return total


def causal_lm_loss(hidden_states, head, targets, *, chunk: int = 4096, fused: bool = True):
    """(sum of token losses, number of loss tokens) for hidden [B, L, H] and already-shifted targets [B, L]."""
    import torch
    import torch.nn.functional as F

    flat_t = targets.reshape(-1)
    keep = (flat_t != IGNORE).nonzero(as_tuple=True)[0]
    h = hidden_states.reshape(-1, hidden_states.shape[-1]).index_select(0, keep)
    y = flat_t.index_select(0, keep)
    n = int(keep.numel())
    if n == 0:
        # Keep the graph connected (DDP expects every trainable parameter to get a gradient).
        return hidden_states.sum() * 0.0, 0
    if not fused:
        logits = head(h)
        return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), y, reduction="sum"), n
    if type(head) is torch.nn.Linear and head.bias is None:
        return fused_linear_cross_entropy(h, head.weight, y, chunk), n
    return chunked_module_cross_entropy(h, head, y, chunk), n
