"""The model registry: base models, model versions (adapter + encoder fingerprint + lineage + metrics +
evals + status), verification on load, model cards. Tables live in the project home's LanceDB
database; artifacts under `<home>/artifacts/models/` (base/NAME/, versions/NAME/VERSION/).
"""

from llmfti.registry.model_version import STATUSES, ModelVersion, parse_model_ref
from llmfti.registry.registry import DEFAULT_PROMPT_TEMPLATE, ModelRegistry
from llmfti.registry.verify import CheckFailed, CheckReport

__all__ = ["CheckFailed", "CheckReport", "DEFAULT_PROMPT_TEMPLATE", "ModelRegistry", "ModelVersion", "STATUSES", "parse_model_ref"]
