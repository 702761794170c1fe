"""Training pipelines: LoRA fine-tuning of a base model on an encoded training dataset.

    llmfti finetune --config configs/finetune/smollm2-demo.yaml --set train.max_steps=100

Modules: data (encoded examples), packing (rows without cross-example attention), loss (fused
linear + cross-entropy), trainer (the loop), checkpoint (resume), guards (silent-failure checks),
distributed (torchrun / accelerate launch), register (the registry call), run (the pipeline).
Nothing here imports torch at module import time: `import llmfti.training` stays cheap.
"""

from __future__ import annotations


def finetune(cfg, **kwargs):
    """See `llmfti.training.run.finetune`."""
    from llmfti.training.run import finetune as _finetune

    return _finetune(cfg, **kwargs)


__all__ = ["finetune"]
