"""Verification of a model version without loading weights for serving: artifact hashes and the
encoder fingerprint. `load_encoder`/`load_model` and `llmfti models check` share this code, so a
deployment refuses exactly what `check` reports, naming the difference."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llmfti.errors import IncompatibleError
from llmfti.hashing import sha256_file, sha256_files
from llmfti.registry import base_models as bm
from llmfti.transforms.model_dependent.fingerprint import LABELS, FingerprintMismatch, differences


@dataclass
class CheckReport:
    """One line per verified item: name, ok, and a detail naming what differs."""

    ref: str
    items: list[dict] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.items.append({"check": name, "ok": bool(ok), "detail": detail})

    @property
    def ok(self) -> bool:
        return all(i["ok"] for i in self.items)

    @property
    def failures(self) -> list[dict]:
        return [i for i in self.items if not i["ok"]]

    def to_dict(self) -> dict:
        return {"ref": self.ref, "ok": self.ok, "checks": self.items}


class CheckFailed(IncompatibleError):
    """A model version's artifacts or fingerprint do not match what the registry recorded."""

    def __init__(self, report: CheckReport):
        named = "; ".join(f"{f['check']}: {f['detail']}" for f in report.failures)
        super().__init__(f"model {report.ref} failed verification: {named}", hint="re-register the model version, or restore its files")
        self.report = report

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.update(differences=[f["check"] for f in self.report.failures], report=self.report.to_dict())
        return out


def component_of(relpath: str) -> str:
    """Which fingerprint component (or artifact) a file of a version folder belongs to."""
    if relpath.startswith("tokenizer/"):
        return "chat_template" if "chat_template" in relpath else "tokenizer_files"
    if relpath == "prompt_template.yaml":
        return "prompt_template"
    if relpath.startswith("adapter/"):
        return "adapter"
    return "artifact"


def changed_files(root: Path, recorded: dict[str, str], prefixes: tuple[str, ...] = ("",)) -> list[str]:
    """Relative paths (under the given prefixes) that are missing, changed or unexpected."""
    out = []
    for rel, digest in sorted(recorded.items()):
        if not rel.startswith(prefixes):
            continue
        f = root / rel
        if not f.is_file():
            out.append(f"{rel} (missing)")
        elif sha256_file(f) != digest:
            out.append(f"{rel} (changed)")
    for prefix in {p.rstrip("/") for p in prefixes if p}:
        base = root / prefix
        if base.is_dir():
            for f in sorted(base.rglob("*")):
                rel = f.relative_to(root).as_posix()
                if f.is_file() and rel not in recorded:
                    out.append(f"{rel} (unexpected)")
    return out


def verify_encoder(mv, encoder_factory, *, template=None, max_prompt_tokens=None, max_answer_tokens=None):
    """Load the pinned encoder of `mv` (or with overrides) and compare it with the stored fingerprint.
    Raises FingerprintMismatch naming tokenizer files, chat template, prompt template or budget."""
    from llmfti.errors import LlmftiError

    pinned = changed_files(mv.path, mv.files, ("tokenizer/", "prompt_template.yaml"))
    if template is not None:  # an explicit template replaces the pinned file: its bytes do not matter
        pinned = [p for p in pinned if not p.startswith("prompt_template.yaml")]
    encoder, load_error = None, None
    try:
        encoder = encoder_factory(template, max_prompt_tokens or mv.max_prompt_tokens, max_answer_tokens or mv.max_answer_tokens)
    except LlmftiError as exc:
        load_error = exc
    if encoder is not None:
        diffs = differences(mv.fingerprint_components, encoder.fingerprint_components)
        if diffs:
            raise FingerprintMismatch(f"model {mv.ref}", diffs, details=pinned or None, hint="the tokenizer/template being loaded is not the one this version was trained and registered with")
    if pinned:
        comps = [c for c in ("tokenizer_files", "chat_template", "prompt_template") if any(component_of(p.split(" ")[0]) == c for p in pinned)]
        raise FingerprintMismatch(f"model {mv.ref}", comps, details=pinned + ([str(load_error)] if load_error else []))
    if load_error is not None:
        raise load_error
    return encoder


def check_version(mv, base: dict | None, home_root: Path, encoder_factory) -> CheckReport:
    """All checks, collected rather than stopping at the first failure."""
    import json

    report = CheckReport(mv.ref)
    if base is None:
        report.add("base_model", False, f"base model {mv.base_model!r} is not registered")
    else:
        folder = home_root / base["path"]
        # The same selection as at import (base_models.weight_files), so extra .bin files such as
        # training_args.bin are checked as ordinary files, not as weights.
        weights = bm.weight_files(folder) if folder.is_dir() else []
        actual = sha256_files(folder, weights) if folder.is_dir() else None
        report.add("base_weights", actual == base["weights_sha256"], "" if actual == base["weights_sha256"] else f"weights of {base['name']} differ from the recorded sha256")
        bad = changed_files(folder, {k: v for k, v in base["files"].items() if k not in weights}) if folder.is_dir() else ["folder missing"]
        report.add("base_files", not bad, ", ".join(bad))
    if mv.adapter_sha256:
        actual = sha256_files(mv.adapter_dir) if mv.adapter_dir.is_dir() else None
        report.add("adapter", actual == mv.adapter_sha256, "" if actual == mv.adapter_sha256 else "adapter files differ from the recorded sha256: " + ", ".join(changed_files(mv.path, mv.files, ("adapter/",))))
    cfg = mv.path / "config.json"
    recorded = json.loads(cfg.read_text()).get("encoder_fingerprint") if cfg.is_file() else None
    report.add("config.json", recorded == mv.encoder_fingerprint, "" if recorded == mv.encoder_fingerprint else "config.json is missing or records another fingerprint")
    try:
        verify_encoder(mv, encoder_factory)
        for c in ("tokenizer_files", "chat_template", "prompt_template", "budget"):
            report.add(c, True)
    except FingerprintMismatch as exc:
        for c in ("tokenizer_files", "chat_template", "prompt_template", "budget"):
            ok = c not in exc.differences
            report.add(c, ok, "" if ok else f"{LABELS[c]} differs from the registered fingerprint" + (f" ({'; '.join(d for d in exc.details if component_of(d.split(' ')[0]) == c)})" if exc.details else ""))
    return report
