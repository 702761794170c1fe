"""Typed configs, one pydantic model per pipeline, loaded from `configs/<stage>/<name>.yaml`.

`CONFIG_MODELS` maps each `configs/` sub-folder to its model so one test can validate every YAML.
Config modules import only pydantic, `llmfti.config.base` and `llmfti.errors`: every other layer
may import them without a cycle.
"""

from __future__ import annotations

from llmfti.config.base import apply_overrides, load_config
from llmfti.config.deployments import DeploymentConfig
from llmfti.config.features import ChunkerConfig, EmbedderConfig, FeatureConfig
from llmfti.config.finetune import FinetuneConfig
from llmfti.config.generation import GenerationSettings

CONFIG_MODELS = {"features": FeatureConfig, "finetune": FinetuneConfig, "deployments": DeploymentConfig}

__all__ = [
    "CONFIG_MODELS", "ChunkerConfig", "DeploymentConfig", "EmbedderConfig", "FeatureConfig", "FinetuneConfig",
    "GenerationSettings", "apply_overrides", "load_config",
]
