"""Typed configs, one pydantic model per pipeline, loaded from `configs/<stage>/<name>.yaml`.

`CONFIG_MODELS` maps each `configs/` sub-folder to its model so one test can validate every YAML.
"""

from __future__ import annotations

from llmfti.config.base import load_config, apply_overrides
from llmfti.config.features import ChunkerConfig, EmbedderConfig, FeatureConfig
from llmfti.config.finetune import FinetuneConfig

CONFIG_MODELS = {"features": FeatureConfig, "finetune": FinetuneConfig}

from llmfti.config.deployments import DeploymentConfig

CONFIG_MODELS["deployments"] = DeploymentConfig

__all__ = ["CONFIG_MODELS", "ChunkerConfig", "DeploymentConfig", "EmbedderConfig", "FeatureConfig", "FinetuneConfig", "apply_overrides", "load_config"]
