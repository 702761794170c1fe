"""Model-dependent transformations (training and inference): prompt template + chat template +
tokenizer + context budget, in ONE implementation (`PromptEncoder`) called by the training-dataset
encoder and by the online agent, so that there is no training/serving skew. Its fingerprint is stored
with each model version and verified on load (`llmfti.registry`).
"""

from llmfti.transforms.model_dependent.encoder import (
    IGNORE_INDEX,
    EncodedExample,
    EncodedPrompt,
    PromptEncoder,
    PromptTooLong,
)
from llmfti.transforms.model_dependent.fingerprint import COMPONENTS, FingerprintMismatch
from llmfti.transforms.model_dependent.template import Context, PromptTemplate, load_prompt_template

__all__ = [
    "COMPONENTS",
    "Context",
    "EncodedExample",
    "EncodedPrompt",
    "FingerprintMismatch",
    "IGNORE_INDEX",
    "PromptEncoder",
    "PromptTemplate",
    "PromptTooLong",
    "load_prompt_template",
]
