"""Typed configs, one pydantic model per pipeline, loaded from `configs/<stage>/<name>.yaml`.

`CONFIG_MODELS` maps each `configs/` sub-folder to its model so one test can validate every YAML.
"""

from __future__ import annotations

from llmfti.config.base import load_config, apply_overrides
from llmfti.config.features import ChunkerConfig, EmbedderConfig, FeatureConfig

CONFIG_MODELS = {"features": FeatureConfig}

__all__ = ["CONFIG_MODELS", "ChunkerConfig", "EmbedderConfig", "FeatureConfig", "apply_overrides", "load_config"]

from llmfti.config.deployments import DeploymentConfig  # noqa: E402

CONFIG_MODELS["deployments"] = DeploymentConfig
