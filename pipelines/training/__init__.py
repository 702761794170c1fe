"""The training pipeline: a training dataset -> a LoRA fine-tune -> a registered model version with
lineage (CLI: `llmfti finetune`). The engine (packing, fused loss, the loop, checkpoints, guards,
distributed set-up) is `llmfti.training`; this package reads the store and writes the registry.

    from llmfti.pipelines.training import finetune
    result = finetune(load_config(FinetuneConfig, "configs/finetune/smollm2-demo.yaml"))

Modules: run (the run), dpo (the alignment run, `method: dpo`), rundir (run folders), dataset
(reading NAME:VERSION), register (the registry call).
"""

from __future__ import annotations


def finetune(cfg, **kwargs):
    """See `llmfti.pipelines.training.run.finetune`."""
    from llmfti.pipelines.training.run import finetune as _finetune

    return _finetune(cfg, **kwargs)


__all__ = ["finetune"]
