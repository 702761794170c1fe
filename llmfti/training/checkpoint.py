"""Resumable checkpoints: `<run_dir>/checkpoints/step-000120/` = adapter + optimizer/scheduler/RNG state.

A checkpoint is written to a temporary sibling and renamed, so a crash never leaves a half-written
one that resume would pick up. It records a fingerprint of the settings and the data that define the
data order and the model (`resume_key`: the dataset's content hash, not only its name or path);
resuming with different ones is refused, because continuing a run on other data or another adapter
shape would silently produce a model nobody asked for.

Loading never runs code from the checkpoint folder: the key is read from `trainer_state.json` and
checked first, and the tensors (optimizer, scheduler, RNG) load with `torch.load(weights_only=True)`,
which refuses pickled objects. A crafted `trainer_state.pt` is an error, not an execution.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from llmfti.errors import ConfigError
from llmfti.hashing import sha256_json

STATE = "trainer_state.pt"
META = "trainer_state.json"


def resume_key(cfg, dataset_ref: str, data_hash: str | None = None) -> str:
    t = cfg.train
    return sha256_json(
        {
            "base_model": cfg.base_model,
            "dataset": dataset_ref,
            "data_sha256": data_hash,
            "lora": cfg.lora.model_dump(),
            "seed": t.seed,
            "max_seq_len": t.max_seq_len,
            "packing": t.packing,
            "batch_tokens": t.batch_tokens,
            "grad_accum": t.grad_accum,
            "overlong": t.overlong,
        }
    )[:16]


def latest(run_dir: Path) -> Path | None:
    root = Path(run_dir) / "checkpoints"
    done = sorted(p for p in root.glob("step-*") if (p / STATE).is_file()) if root.is_dir() else []
    return done[-1] if done else None


def save(run_dir: Path, step: int, *, peft_model, optimizer, scheduler, key: str, history: list, keep: int) -> Path:
    import torch

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    peft_model.save_pretrained(str(tmp / "adapter"))
    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
    }
    torch.save(state, tmp / STATE)
    (tmp / META).write_text(json.dumps({"format": 2, "step": step, "key": key, "history": history}, default=float), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(p for p in root.glob("step-*") if p != final)[: max(0, len(list(root.glob("step-*"))) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(ckpt: Path, *, peft_model, optimizer, scheduler, key: str, device) -> dict:
    """Restore adapter weights, optimizer, scheduler and RNG; returns the saved state (step, history)."""
    import pickle

    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    meta = _read_meta(Path(ckpt))
    if meta is not None and meta.get("key") != key:  # checked before any tensor file is opened
        raise _mismatch(ckpt)
    try:
        state = torch.load(Path(ckpt) / STATE, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, ValueError) as exc:
        raise ConfigError(f"checkpoint {ckpt} is not a plain tensor checkpoint and was not loaded ({type(exc).__name__})",
                          hint="start over with --no-resume; never resume from a checkpoint you did not write") from None
    if meta is None:  # written by llmfti 0.1: the key and history lived in the tensor file
        meta = {"key": state.get("key"), "step": state.get("step"), "history": state.get("history", [])}
        if meta["key"] != key:
            raise _mismatch(ckpt)
    weights = load_file(str(Path(ckpt) / "adapter" / "adapter_model.safetensors"), device=str(device))
    set_peft_model_state_dict(peft_model, weights)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return {"step": int(meta["step"]), "history": list(meta.get("history") or [])}


def _read_meta(ckpt: Path) -> dict | None:
    path = ckpt / META
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"checkpoint {ckpt}: unreadable {META}: {exc}", hint="start over with --no-resume") from None


def _mismatch(ckpt) -> ConfigError:
    return ConfigError(f"checkpoint {ckpt} was made with other data or model settings",
                       hint="resume with the same config and data, or start over with --no-resume")
