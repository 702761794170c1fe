"""The alignment run (`method: dpo`): a preference training dataset -> DPO on LoRA (TRL) -> a registered
model version whose lineage names its parent version and the preference dataset (CLI: `llmfti finetune`
with `method: dpo`; `llmfti.pipelines.training.finetune` dispatches here).

    cfg = load_config(FinetuneConfig, "configs/finetune/smollm2-demo.yaml",
                      ["method=dpo", "name=smollm2-dpo", "parent_model=smollm2-python-qa:1", "dataset=python-prefs:1"])
    result = finetune(cfg)

Steps: read the preference dataset -> check its encoder is the parent's (the pairs' prompts are what
the parent serves with) and that answers end with EOS -> load the base model with the parent's
adapter, trainable (TRL keeps a frozen copy as the reference policy), or a fresh adapter -> train
(`llmfti.training.align`, resuming the latest unfinished run) -> save the adapter -> guards (it
changes the output relative to the parent; generations end with EOS) -> register -> result.json.
The registered version is served, evaluated and promoted like any other: same gate, same
champion/challenger comparison.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmfti.errors import ConfigError, IncompatibleError


def align(cfg, *, home=None, resume: bool = True, merge: bool | None = None, register: bool = True, progress: bool = True) -> dict:
    """Run one DPO alignment; returns result.json's content (on every rank; only rank 0 writes)."""
    from llmfti.pipelines.training.dataset import read_preference_dataset
    from llmfti.pipelines.training.rundir import shared_run_dir
    from llmfti.training import align as engine
    from llmfti.training import distributed, guards
    from llmfti.training.model_setup import load_base, resolve_attn, resolve_base_model, resolve_device, resolve_dtype

    t = cfg.train
    device = resolve_device(cfg.device)
    d = distributed.setup(device.type)
    try:
        pairs, info = read_preference_dataset(cfg.dataset, home)
        train, dropped = engine.fit_pairs([p for p in pairs if p["split"] != "eval"], t.max_seq_len, t.overlong)
        evals, dropped_eval = engine.fit_pairs([p for p in pairs if p["split"] == "eval"], t.max_seq_len, t.overlong)
        if not train:
            raise ConfigError(f"{info.ref}: no training pair fits train.max_seq_len={t.max_seq_len}")
        base_path = resolve_base_model(cfg.base_model, home)
        parent = resolve_parent(cfg, home, info, base_path)
        dtype, attn = resolve_dtype(cfg.precision, device), resolve_attn(cfg.attn_implementation, device)
        model, tokenizer = load_base(base_path, dtype=dtype, attn=attn, device=device)
        if parent["adapter_dir"]:
            from peft import PeftModel

            from llmfti.models.peft_quiet import peft_quiet

            with peft_quiet():
                model = PeftModel.from_pretrained(model, parent["adapter_dir"], is_trainable=True)
        eos = guards.eos_ids_of(tokenizer, model)
        share = engine.eos_share(train, eos) if eos else None
        if share == 0 and cfg.guards.eos == "error":
            raise guards.NoEosError(f"no answer of {info.ref} ends with EOS {sorted(eos)}: the aligned model would never learn to stop",
                                    hint="create the preference dataset with `llmfti td create` (answers end with EOS)")
        run_dir = shared_run_dir(cfg, home, resume, d)
        peft_model, metrics = engine.train_dpo(cfg, model, tokenizer, train, evals, run_dir=run_dir, device=device, resume=resume,
                                               progress=progress)
        metrics.update(dropped_overlong=dropped, dropped_overlong_eval=dropped_eval, answers_end_with_eos=share, device=str(device),
                       dtype=str(dtype).replace("torch.", ""), attn_implementation=attn)
        result: dict = {}
        if d.main:
            result = _finish(cfg, home, run_dir, peft_model, tokenizer, train, evals, eos, device, metrics, info, parent, base_path,
                             merge if merge is not None else cfg.merge, register)
        distributed.barrier(d)
        return result
    finally:
        distributed.teardown(d)


def resolve_parent(cfg, home, info, base_path) -> dict:
    """What the run starts from: {ref, adapter_dir, ...} of `parent_model` after checking it fits (same
    base model, the dataset's encoder, intact adapter), or the base model itself."""
    from llmfti.hashing import sha256_files
    from llmfti.registry import ModelRegistry

    if cfg.parent_model is None:
        return {"ref": None, "base_model": cfg.base_model, "adapter_dir": None, "adapter_sha256": None}
    reg = ModelRegistry(home)
    mv = reg.get(cfg.parent_model)
    if Path(base_path).resolve() != reg.base_path(mv.base_model).resolve():
        raise ConfigError(f"parent {mv.ref} is an adapter on base model {mv.base_model!r}, not on {cfg.base_model!r}",
                          hint=f"set base_model: {mv.base_model}")
    fingerprint = (info.encoder or {}).get("fingerprint")
    if fingerprint != mv.encoder_fingerprint:
        raise IncompatibleError(f"{info.ref} was encoded with encoder {str(fingerprint)[:12]}, but {mv.ref} serves with "
                                f"{mv.encoder_fingerprint[:12]}: the pairs' prompts would not be the ones the model is served with",
                                hint=f"create the preference dataset with --model {mv.ref}")
    if mv.adapter_sha256 and sha256_files(mv.adapter_dir) != mv.adapter_sha256:
        raise IncompatibleError(f"parent {mv.ref}: adapter files differ from the recorded sha256")
    return {"ref": mv.ref, "base_model": mv.base_model, "adapter_dir": str(mv.adapter_dir) if mv.adapter_sha256 else None,
            "adapter_sha256": mv.adapter_sha256, "training_dataset": mv.training_dataset}


def _finish(cfg, home, run_dir, peft_model, tokenizer, train, evals, eos, device, metrics, info, parent, base_path, merge, register) -> dict:
    """Rank 0: save the adapter, run the guards, register, merge; result.json last."""
    from llmfti.hashing import sha256_files
    from llmfti.pipelines.training.register import register_result
    from llmfti.pipelines.training.rundir import RESULT
    from llmfti.training import align as engine
    from llmfti.training import guards

    g = cfg.guards
    adapter_dir = Path(run_dir) / "adapter"
    engine.save_adapter(peft_model, adapter_dir)
    tokenizer.save_pretrained(str(adapter_dir))
    probes = evals or train
    checks: dict = {}
    if g.adapter_changes_output:
        probe = tokenizer(g.probe_prompt, add_special_tokens=True)["input_ids"] if g.probe_prompt else probes[0]["prompt_ids"]
        checks["policy_logit_delta"] = engine.check_changes_policy(peft_model, probe, min_delta=g.min_logit_delta, device=device)
    if eos:
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
        checks["eos"] = guards.check_emits_eos(peft_model, [p["prompt_ids"] for p in probes[: g.eos_probes]], eos, max_new_tokens=g.eos_max_new_tokens,
                                               min_fraction=g.eos_min_fraction, mode=g.eos, pad_id=pad_id, device=device)
    config = cfg.model_dump(mode="json")
    alignment = {"method": "dpo", "parent": parent, "preference_dataset": info.ref, "beta": cfg.dpo.beta, "loss_type": cfg.dpo.loss_type}
    (adapter_dir / "llmfti_training.json").write_text(json.dumps(
        {"base_model": cfg.base_model, "base_model_path": base_path, "training_dataset": info.ref, "alignment": alignment,
         "encoder": info.encoder, "config": config}, indent=2, default=str), encoding="utf-8")
    registration = {"registered": False, "reason": "register=False"}
    if register:
        registration = register_result(
            home, name=cfg.name, base_model=cfg.base_model, base_model_path=str(base_path), adapter_dir=str(adapter_dir),
            encoder=info.encoder_factory(), prompt_template=(info.encoder or {}).get("prompt_template"), training_dataset=info.ref,
            # The registry's lineage holds the dataset's; the alignment (parent version, method) travels with it.
            dataset_lineage={**(info.lineage or {}), "alignment": alignment},
            metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
            config={**config, "alignment": alignment},
        )
    merged_dir = None
    if merge:
        merged_dir = Path(run_dir) / "merged"
        merged = peft_model.merge_and_unload(adapter_names=["default"])
        merged.save_pretrained(str(merged_dir))
        tokenizer.save_pretrained(str(merged_dir))
    result = {
        "name": cfg.name, "method": "dpo", "run_dir": str(run_dir), "adapter_dir": str(adapter_dir), "adapter_sha256": sha256_files(adapter_dir),
        "merged_dir": str(merged_dir) if merged_dir else None, "base_model": cfg.base_model, "parent": parent,
        "training_dataset": info.ref, "metrics": metrics, "guards": checks, "registration": registration,
    }
    (Path(run_dir) / RESULT).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return result
