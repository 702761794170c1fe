"""The fine-tuning run: encoded examples in, a registered LoRA model version out. The engine
(packing, loss, the loop, checkpoints, guards) is `llmfti.training`; this module wires it to the stores.

    from llmfti.config import FinetuneConfig, load_config
    from llmfti.pipelines.training import finetune
    result = finetune(load_config(FinetuneConfig, "configs/finetune/smollm2-demo.yaml"))

Steps: read the training dataset -> check answers end with EOS -> load the base model + LoRA ->
train (resuming the latest unfinished run of this name unless resume=False) -> save the adapter ->
guards (adapter changes outputs, model emits EOS) -> register -> optional merged weights.
Run folders: `<home>/artifacts/runs/finetune/<name>/run-<UTC time>/` holding checkpoints/, adapter/,
merged/ and result.json (written last: a folder without it is an unfinished, resumable run).
Multi-GPU: launch the same command with torchrun or accelerate launch (see distributed.py).
`method: dpo` (preference alignment on TRL) runs `llmfti.pipelines.training.dpo.align` instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmfti.errors import ConfigError
from llmfti.pipelines.training.rundir import RESULT, shared_run_dir as _shared_run_dir


def finetune(cfg, *, home=None, source=None, resume: bool = True, merge: bool | None = None,
             register: bool = True, progress: bool = True) -> dict:
    """Run one fine-tune; returns result.json's content (on every rank; only rank 0 writes)."""
    if cfg.method == "dpo":
        if source is not None:
            raise ConfigError("method dpo reads a preference training dataset (`dataset`), not in-memory examples")
        from llmfti.pipelines.training.dpo import align

        return align(cfg, home=home, resume=resume, merge=merge, register=register, progress=progress)
    from llmfti.hashing import sha256_files
    from llmfti.pipelines.training.dataset import read_training_dataset
    from llmfti.pipelines.training.register import register_result
    from llmfti.training import distributed, guards
    from llmfti.training.data import load_encoded_examples
    from llmfti.training.model_setup import add_lora, autocast_dtype, load_base, resolve_attn, resolve_base_model, resolve_device, resolve_dtype
    from llmfti.training.packing import fit_examples
    from llmfti.training.trainer import Trainer

    t = cfg.train
    device = resolve_device(cfg.device)
    d = distributed.setup(device.type)
    try:
        info = None
        if source is not None:
            src = source
        elif cfg.dataset:
            src, info = read_training_dataset(cfg.dataset, home)
        else:
            src = cfg.data_path
        train, evals, info = load_encoded_examples(src, info=info, eval_fraction=cfg.eval_fraction, seed=t.seed)
        train, dropped = fit_examples(train, t.max_seq_len, t.overlong)
        evals, dropped_eval = fit_examples(evals, t.max_seq_len, t.overlong)
        if not train:
            raise ConfigError(f"every training example is longer than train.max_seq_len={t.max_seq_len}")

        base_path = resolve_base_model(cfg.base_model, home)
        dtype, attn = resolve_dtype(cfg.precision, device), resolve_attn(cfg.attn_implementation, device)
        model, tokenizer = load_base(base_path, dtype=dtype, attn=attn, device=device)
        eos = guards.eos_ids_of(tokenizer, model)
        eos_share = guards.check_labels_end_with_eos(train, eos, cfg.guards.eos) if eos else None
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (min(eos) if eos else 0)
        peft_model = add_lora(model, cfg.lora, seed=t.seed)

        run_dir = _shared_run_dir(cfg, home, resume, d)
        trainer = Trainer(cfg, peft_model, train, evals, pad_id=pad_id, device=device, run_dir=run_dir,
                          dataset_ref=info.ref, data_hash=info.extra.get("content_hash") or info.extra.get("content_sha256"),
                          dist=d, progress=progress, autocast=autocast_dtype(cfg.precision, device))
        metrics = trainer.fit(resume=resume)
        metrics.update(dropped_overlong=dropped, dropped_overlong_eval=dropped_eval, labels_end_with_eos=eos_share,
                       device=str(device), dtype=str(dtype).replace("torch.", ""), attn_implementation=attn,
                       compute_dtype="bfloat16" if autocast_dtype(cfg.precision, device) is not None else str(dtype).replace("torch.", ""))

        result: dict = {}
        if d.main:
            result = _finish(cfg, home, run_dir, peft_model, tokenizer, train, evals, eos, pad_id, device,
                             metrics, info, base_path, merge if merge is not None else cfg.merge, register,
                             sha256_files, register_result)
        distributed.barrier(d)
        return result
    finally:
        distributed.teardown(d)


def _finish(cfg, home, run_dir, peft_model, tokenizer, train, evals, eos, pad_id, device, metrics, info,
            base_path, merge, register, sha256_files, register_result) -> dict:
    """Rank 0: save the adapter, run the guards, register, merge; result.json last."""
    from llmfti.training import guards

    g = cfg.guards
    adapter_dir = Path(run_dir) / "adapter"
    peft_model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))  # the adapter folder is self-describing for other tools
    probe_src = (evals or train)[0]
    probe = tokenizer(g.probe_prompt, add_special_tokens=True)["input_ids"] if g.probe_prompt else guards.prompt_of(probe_src)
    checks: dict = {}
    if g.adapter_changes_output:
        checks["adapter_logit_delta"] = guards.check_adapter_changes_output(peft_model, probe, min_delta=g.min_logit_delta, device=device)
    if eos:
        prompts = [guards.prompt_of(e) for e in (evals or train)[: g.eos_probes]]
        checks["eos"] = guards.check_emits_eos(peft_model, prompts, eos, max_new_tokens=g.eos_max_new_tokens,
                                               min_fraction=g.eos_min_fraction, mode=g.eos, pad_id=pad_id, device=device)
    adapter_hash = sha256_files(adapter_dir)
    config = cfg.model_dump(mode="json")
    (adapter_dir / "llmfti_training.json").write_text(json.dumps(
        {"base_model": cfg.base_model, "base_model_path": base_path, "training_dataset": info.ref,
         "encoder": info.encoder, "config": config}, indent=2, default=str), encoding="utf-8")
    registration = {"registered": False, "reason": "register=False"}
    if register:
        # The encoder the examples were made with (rebuilt and verified by the dataset), not a guess.
        encoder = info.encoder_factory() if info.encoder_factory is not None else info.encoder
        registration = register_result(
            home, name=cfg.name, base_model=cfg.base_model, base_model_path=str(base_path), adapter_dir=str(adapter_dir),
            encoder=encoder, prompt_template=(info.encoder or {}).get("prompt_template"),
            training_dataset=info.ref, dataset_lineage=info.lineage,
            metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None and not isinstance(v, bool)},
            config=config,
        )
    merged_dir = None
    if merge:
        merged_dir = Path(run_dir) / "merged"
        merged = peft_model.merge_and_unload()
        merged.save_pretrained(str(merged_dir))
        tokenizer.save_pretrained(str(merged_dir))
    result = {
        "name": cfg.name, "run_dir": str(run_dir), "adapter_dir": str(adapter_dir), "adapter_sha256": adapter_hash,
        "merged_dir": str(merged_dir) if merged_dir else None, "base_model": cfg.base_model,
        "training_dataset": info.ref, "metrics": metrics, "guards": checks, "registration": registration,
    }
    (Path(run_dir) / RESULT).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return result
