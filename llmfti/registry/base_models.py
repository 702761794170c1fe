"""Import base models into `<home>/artifacts/models/base/NAME/` as plain local model folders.

A source is a local model folder, a GGUF file (de-quantized once by `llmfti.models.gguf_import`), or
a Hugging Face id (only where a hub or a local cache is reachable). The import records the source,
weights hash, tokenizer and chat-template fingerprints, architecture, parameter count (read from the
safetensors headers, no weights loaded), context length and license when known. Re-importing the same
source under the same name is a no-op; another source under an existing name is refused.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from llmfti.errors import ConfigError, NotFoundError
from llmfti.hashing import sha256_file, sha256_files
from llmfti.home import ProjectHome

MARKER = "llmfti_source.json"  # the base model's registry record, next to its files (DESIGN example 5)
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def base_dir(home: ProjectHome, name: str) -> Path:
    return home.models_dir / "base" / name


def weight_files(folder: Path) -> list[str]:
    names = sorted(p.name for p in folder.glob("*.safetensors")) or sorted(p.name for p in folder.glob("pytorch_model*.bin"))
    return names


def file_hashes(folder: Path, exclude: tuple[str, ...] = (MARKER,)) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() not in exclude
    }


def _safetensors_parameters(path: Path) -> int:
    # The header (8-byte little-endian length, then JSON) lists every tensor's shape: no torch needed.
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def inspect_folder(folder: Path) -> dict:
    """Architecture, model type, parameter count and context length of a model folder."""
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"{folder} is not a model folder (no config.json)")
    cfg = json.loads(cfg_path.read_text())
    text_cfg = cfg.get("text_config") or {}
    context = next((cfg.get(k) or text_cfg.get(k) for k in _CONTEXT_KEYS if cfg.get(k) or text_cfg.get(k)), None)
    safetensors = [folder / n for n in weight_files(folder) if n.endswith(".safetensors")]
    return {
        "architecture": (cfg.get("architectures") or [cfg.get("model_type", "unknown")])[0],
        "model_type": cfg.get("model_type"),
        "parameters": sum(_safetensors_parameters(p) for p in safetensors) if safetensors else None,
        "context_length": int(context) if context else None,
    }


def tokenizer_fingerprints(folder: Path) -> tuple[str | None, str | None]:
    from llmfti.transforms.model_dependent.fingerprint import chat_template_fingerprint, tokenizer_fingerprint

    if not any((folder / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")):
        return None, None
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # assorted errors for broken tokenizer files
        raise ConfigError(f"cannot load the tokenizer in {folder}: {exc}") from exc
    return tokenizer_fingerprint(tok), (chat_template_fingerprint(tok) if getattr(tok, "chat_template", None) else None)


def detect_license(folder: Path, gguf: Path | None = None) -> str | None:
    """From GGUF metadata (`general.license`) or a model card's front matter (`license:`)."""
    if gguf is not None:
        try:
            from gguf import GGUFReader

            field = GGUFReader(str(gguf)).fields.get("general.license")
            if field is not None:
                return str(field.contents())
        except Exception:  # metadata is optional; a reader failure must not fail the import
            pass
    readme = folder / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")
        if text.startswith("---"):
            for line in text.split("---", 2)[1].splitlines():
                if line.strip().startswith("license:"):
                    return line.split(":", 1)[1].strip().strip("'\"") or None
    return None


def resolve_source(source: str) -> tuple[str, Path]:
    """('folder'|'gguf'|'hub', local path). Hub ids resolve through huggingface_hub's cache/hub."""
    path = Path(source).expanduser()
    if path.is_dir():
        return "folder", path.absolute()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(f"{source}: give a model folder, a .gguf file or a hub id")
        return "gguf", path.absolute()
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise NotFoundError(f"model source not found: {source}")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(repo_id=source, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "README.md", "LICENSE*"])
    except Exception as exc:  # offline, unknown id, gated repo...
        raise NotFoundError(f"{source!r} is not a local folder or GGUF file, and the hub/cache cannot provide it: {exc}") from exc
    return "hub", Path(local)


def source_gguf(folder: Path) -> Path:
    """The GGUF file a base model folder was imported from, found by the sha256 its record holds: at the
    recorded path, or, for the embedded default (whose virtual environment may have been rebuilt since),
    in its package. ConfigError when the folder was not imported from a GGUF or the file is gone."""
    from llmfti.hashing import sha256_file_memo
    from llmfti.models.defaults import GGUF_FILENAME, packaged_generator_gguf

    marker = folder / MARKER
    record = json.loads(marker.read_text()) if marker.is_file() else {}
    if record.get("source_kind") == "gguf":
        candidates = [Path(record.get("source", ""))]
        if candidates[0].name == GGUF_FILENAME:
            try:
                candidates.append(packaged_generator_gguf())
            except NotFoundError:  # the package is one more place to look, not a requirement
                pass
        for path in candidates:
            if path.is_file() and sha256_file_memo(path) == record.get("source_sha256"):
                return path
    raise ConfigError(f"backend.decode: llama_cpp needs the GGUF the base model {folder.name} was imported from, and it is not on "
                      "this machine (or the model was not imported from a GGUF)",
                      hint="import the base model from its GGUF (llmfti models import), or use backend.decode: torch")


def source_hash(kind: str, path: Path) -> str:
    return sha256_file(path) if kind == "gguf" else sha256_files(path, weight_files(path))


def materialize(kind: str, path: Path, dest: Path) -> None:
    """Write the model folder at `dest` atomically (temporary sibling, then rename)."""
    from llmfti.models.gguf_import import import_gguf

    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind == "gguf":
        import_gguf(path, dest)  # already atomic
        return
    if not weight_files(path):
        raise ConfigError(f"{path}: no *.safetensors or pytorch_model*.bin weights")
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=dest.parent)) / "m"
    try:
        shutil.copytree(path, tmp, ignore=shutil.ignore_patterns(".git", ".cache", MARKER, "*.gguf"))
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def build_record(home: ProjectHome, name: str, source: str, kind: str, src_hash: str, dest: Path, license: str | None, gguf: Path | None) -> dict:
    info = inspect_folder(dest)
    tok_fp, chat_fp = tokenizer_fingerprints(dest)
    record = {
        "name": name,
        "source": source,
        "source_kind": kind,
        "source_sha256": src_hash,
        "path": dest.relative_to(home.root).as_posix(),
        "weights_sha256": sha256_files(dest, weight_files(dest)),
        "files": file_hashes(dest),
        "tokenizer_fingerprint": tok_fp,
        "chat_template_fingerprint": chat_fp,
        **info,
        "license": license or detect_license(dest, gguf),
        "created_at": datetime.now(timezone.utc),
    }
    (dest / MARKER).write_text(json.dumps({**record, "sha256": src_hash}, indent=2, default=str))
    return record
