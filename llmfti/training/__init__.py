"""The fine-tuning engine: LoRA training of a base model on encoded examples.

Modules: data (encoded examples), packing (rows without cross-example attention), loss (fused
linear + cross-entropy), trainer (the loop), checkpoint (resume), guards (silent-failure checks),
distributed (torchrun / accelerate launch), model_setup (base model + LoRA). The pipeline that
reads a training dataset and registers the result is `llmfti.pipelines.training`.
Nothing here imports torch at module import time: `import llmfti.training` stays cheap.
"""
