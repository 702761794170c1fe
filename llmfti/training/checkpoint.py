"""Resumable checkpoints: `<run_dir>/checkpoints/step-000120/` = adapter + optimizer/scheduler/RNG state.

A checkpoint is written to a temporary sibling and renamed, so a crash never leaves a half-written
one that resume would pick up. It records a fingerprint of the settings that define the data order
and the model (`resume_key`); resuming with different ones is refused, because continuing a run on
other data or another adapter shape would silently produce a model nobody asked for.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from llmfti.errors import ConfigError
from llmfti.hashing import sha256_json

STATE = "trainer_state.pt"


def resume_key(cfg, dataset_ref: str) -> str:
    t = cfg.train
    return sha256_json(
        {
            "base_model": cfg.base_model,
            "dataset": dataset_ref,
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
        "step": step,
        "key": key,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history,
        "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
    }
    torch.save(state, tmp / STATE)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(p for p in root.glob("step-*") if p != final)[: max(0, len(list(root.glob("step-*"))) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(ckpt: Path, *, peft_model, optimizer, scheduler, key: str, device) -> dict:
    """Restore adapter weights, optimizer, scheduler and RNG; returns the saved state (step, history)."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = torch.load(Path(ckpt) / STATE, map_location="cpu", weights_only=False)
    if state["key"] != key:
        raise ConfigError(
            f"checkpoint {ckpt} was made with other data or model settings",
            hint="resume with the same config, or start over with --no-resume",
        )
    weights = load_file(str(Path(ckpt) / "adapter" / "adapter_model.safetensors"), device=str(device))
    set_peft_model_state_dict(peft_model, weights)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state
