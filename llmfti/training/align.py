"""Preference alignment (DPO) on TRL's DPOTrainer, fed with pre-tokenized pairs. Needs the `align`
extra (`pip install 'llmfti[align]'`, which `dev` includes); TRL is imported only when a run starts.

    peft_model, metrics = train_dpo(cfg, model, tokenizer, train_pairs, eval_pairs, run_dir=..., device=...)

What this module adds to TRL, which owns the loss, the reference log-probs and the LoRA handling:
- The pairs arrive encoded ({prompt_ids, chosen_ids, rejected_ids}: the prompt is
  `PromptEncoder.encode_prompt`, what the agent builds; each answer ends with EOS). TRL's dataset
  preparation, which would extract a prompt, append EOS and apply a chat template again, is skipped
  (`PretokenizedDPOTrainer`), so TRL trains on exactly the dataset's ids.
- The run's settings come from `FinetuneConfig` (train.*, dpo.*, precision, gradient_checkpointing).
- A model that already carries an adapter (an SFT parent, loaded trainable) is aligned further; TRL
  keeps a frozen copy of it as adapter "ref", the reference policy. A plain model gets a fresh LoRA
  adapter (cfg.lora) and the base model (adapter disabled) is the reference.
- Guards: the aligned adapter must change the output relative to the reference policy
  (`check_changes_policy`); the EOS guard of `llmfti.training.guards` runs on the result as for SFT.
"""

from __future__ import annotations

import math
from pathlib import Path

from llmfti.errors import ConfigError
from llmfti.training.guards import AdapterNoOpError, logit_delta

PAIR_KEYS = ("prompt_ids", "chosen_ids", "rejected_ids")
REF_ADAPTER = "ref"  # the name TRL gives the frozen copy of a pre-trained adapter


def fit_pairs(pairs: list[dict], max_seq_len: int, overlong: str) -> tuple[list[dict], int]:
    """Pairs whose longer sequence fits `max_seq_len`; 'truncate' keeps them all (TRL cuts the end,
    EOS included) unless the prompt alone fills the budget. Returns (kept, dropped)."""
    def fits(p):
        if overlong == "truncate":
            return len(p["prompt_ids"]) < max_seq_len
        return len(p["prompt_ids"]) + max(len(p["chosen_ids"]), len(p["rejected_ids"])) <= max_seq_len

    kept = [p for p in pairs if fits(p)]
    return kept, len(pairs) - len(kept)


def eos_share(pairs: list[dict], eos_ids: set[int]) -> float:
    """Share of pairs whose chosen AND rejected answers end with EOS."""
    if not pairs:
        return 1.0
    return sum(1 for p in pairs if p["chosen_ids"][-1:] and p["chosen_ids"][-1] in eos_ids and p["rejected_ids"][-1] in eos_ids) / len(pairs)


def _trainer_class():
    from trl import DPOTrainer

    class PretokenizedDPOTrainer(DPOTrainer):
        """DPOTrainer for pairs that are already token ids: no prompt extraction, no EOS added, no chat template."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            missing = set(PAIR_KEYS) - set(dataset.column_names)
            if missing:
                raise ConfigError(f"{dataset_name} pairs lack {sorted(missing)}: build them with `llmfti td create` from a preferences feature group")
            if args.max_length is not None:  # as TRL does: a prompt that fills max_length leaves nothing to learn from
                dataset = dataset.filter(lambda ex: len(ex["prompt_ids"]) < args.max_length)
            return dataset

    return PretokenizedDPOTrainer


def dpo_arguments(cfg, run_dir, device, *, progress: bool = True):
    """TRL's DPOConfig for a FinetuneConfig with method dpo."""
    from trl import DPOConfig

    t = cfg.train
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    schedule = {"cosine": "cosine_with_min_lr", "linear": "linear", "constant": "constant_with_warmup"}[t.schedule]
    # transformers 5.x names it activation_checkpointing (the old name warns and goes in v6); older: gradient_checkpointing.
    import dataclasses

    names = {f.name for f in dataclasses.fields(DPOConfig)}
    checkpointing = {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": cfg.gradient_checkpointing}
    return DPOConfig(
        output_dir=str(Path(run_dir) / "checkpoints"), seed=t.seed, data_seed=t.seed,
        learning_rate=t.lr, weight_decay=t.weight_decay, warmup_steps=t.warmup_steps, lr_scheduler_type=schedule,
        lr_scheduler_kwargs={"min_lr_rate": 0.1} if t.schedule == "cosine" else {},  # as the SFT schedule: cosine to 10%
        max_grad_norm=t.max_grad_norm or 0.0, num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
        per_device_train_batch_size=cfg.dpo.pairs_per_batch, per_device_eval_batch_size=cfg.dpo.pairs_per_batch,
        gradient_accumulation_steps=t.grad_accum, logging_steps=t.log_every, report_to="none",
        eval_strategy="steps" if t.eval_every else "no", eval_steps=t.eval_every or None,
        save_strategy="steps" if t.checkpoint_every else "no", save_steps=t.checkpoint_every or 500, save_total_limit=t.keep_checkpoints,
        bf16=bf16, fp16=False, use_cpu=device.type == "cpu", **checkpointing,
        max_length=t.max_seq_len if t.overlong == "truncate" else None, disable_tqdm=not progress, dataloader_num_workers=0,
        beta=cfg.dpo.beta, loss_type=[cfg.dpo.loss_type], label_smoothing=cfg.dpo.label_smoothing,
    )


def _dataset(pairs: list[dict]):
    from datasets import Dataset

    return Dataset.from_list([{k: list(p[k]) for k in PAIR_KEYS} for p in pairs])


def train_dpo(cfg, model, tokenizer, train: list[dict], evals: list[dict], *, run_dir, device, resume: bool = True,
              progress: bool = True) -> tuple[object, dict]:
    """Align `model` (a PeftModel with a trainable adapter, or a plain model: a fresh LoRA adapter is
    added) on preference pairs. Returns (peft model, metrics): loss and reward margins/accuracies of
    the first and last logged steps, and the preference metrics on the eval pairs (else the training
    pairs) before and after training."""
    import contextlib
    import sys
    import time

    from transformers.trainer_utils import get_last_checkpoint

    from llmfti.models.peft_quiet import peft_quiet
    from llmfti.training.model_setup import lora_config

    if not train:
        raise ConfigError("no preference pairs to train on")
    peft_config = None if hasattr(model, "peft_config") else lora_config(cfg.lora, model)
    args = dpo_arguments(cfg, run_dir, device, progress=progress)
    probe = evals or train
    with peft_quiet():  # TRL wraps the model with peft, which reads a deprecated transformers property
        trainer = _trainer_class()(model=model, args=args, train_dataset=_dataset(train), eval_dataset=_dataset(probe),
                                   processing_class=tokenizer, peft_config=peft_config)
    checkpoint = get_last_checkpoint(args.output_dir) if resume and Path(args.output_dir).is_dir() else None
    # transformers prints its log lines on stdout; with --json, stdout holds one JSON document only.
    with contextlib.redirect_stdout(sys.stderr), peft_quiet():
        before = trainer.evaluate()
        started = time.perf_counter()
        out = trainer.train(resume_from_checkpoint=checkpoint)
        wall = time.perf_counter() - started
        after = trainer.evaluate()
    logged = [h for h in trainer.state.log_history if "loss" in h and "eval_loss" not in h]
    metrics = {
        "method": "dpo", "steps": int(out.global_step), "wall_s": round(wall, 2), "pairs_train": len(train), "pairs_eval": len(evals),
        "preference_eval_split": "eval" if evals else "train", "resumed_from": checkpoint,
        "train_loss": _num(out.training_loss),
        "train_loss_first": _num(logged[0].get("loss")) if logged else None, "train_loss_final": _num(logged[-1].get("loss")) if logged else None,
        "margin_first": _num(logged[0].get("rewards/margins")) if logged else None,
        "margin_final": _num(logged[-1].get("rewards/margins")) if logged else None,
    }
    for name, res in (("start", before), ("end", after)):
        for key in ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected"):
            metrics[f"eval_{key.replace('rewards/', '')}_{name}"] = _num(res.get(f"eval_{key}"))
    return trainer.model, metrics


def _num(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), 6)


def check_changes_policy(peft_model, probe_ids: list[int], *, min_delta: float = 1e-4, device=None) -> float:
    """Max |logit difference| on the probe between the aligned adapter and the reference policy (the
    frozen parent adapter, or the base model); at or below `min_delta` raises AdapterNoOpError."""
    from trl.trainer.utils import use_adapter

    reference = REF_ADAPTER if REF_ADAPTER in peft_model.peft_config else None
    delta = logit_delta(peft_model, probe_ids, lambda: use_adapter(peft_model, reference), device=device)
    if not delta > min_delta:  # also catches NaN
        raise AdapterNoOpError(
            f"alignment did not change the model's output relative to the reference policy (max |logit delta| {delta:.3g} <= {min_delta:g})",
            hint="check train.lr, dpo.beta, that training ran any steps and that the pairs differ",
        )
    return delta


def save_adapter(peft_model, dest) -> None:
    """Save the aligned adapter alone (not TRL's frozen reference copy): a normal peft adapter folder."""
    peft_model.save_pretrained(str(dest), selected_adapters=["default"])
