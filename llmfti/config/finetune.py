"""Config of a LoRA fine-tuning run: `llmfti finetune --config configs/finetune/NAME.yaml [--set k=v]`.

One pydantic model per section (lora, train, guards, dpo) so that the YAML reads like the run it
describes. `method: sft` (the default) trains on encoded examples with llmfti's own trainer;
`method: dpo` aligns on preference pairs (a preference training dataset) with TRL's DPOTrainer,
starting from `parent_model` (an SFT version's adapter) or from `base_model` with a fresh adapter.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from llmfti.config.base import StrictModel


class LoraSettings(StrictModel):
    """The LoRA adapter (peft) trained on top of the frozen base model."""

    r: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear",
        description="Module names to adapt (e.g. [q_proj, v_proj]) or 'all-linear' (every linear layer except the output head).",
    )
    last_layers: int | None = Field(
        None, ge=1, description="Adapt only the last N decoder layers (null: all). Backward then stops at the lowest adapted layer: "
        "a step costs about (1 + 2N/L)/3 of a full one on an L-layer model.")


class TrainSettings(StrictModel):
    """The optimisation loop: batches, steps, schedule, evaluation and checkpoints."""

    seed: int = Field(0, description="Seed for data order, LoRA init and dropout.")
    max_seq_len: int = Field(2048, ge=8, le=131072, description="Tokens per packed row; longer examples are handled by `overlong`.")
    overlong: Literal["drop", "truncate"] = Field(
        "drop", description="What to do with examples longer than max_seq_len ('truncate' cuts the answer and its EOS)."
    )
    packing: bool = Field(
        True,
        description="Pack several examples per row with per-example position_ids (no cross-example attention). "
        "False: one example per row, rows grouped by length and padded.",
    )
    batch_tokens: int = Field(
        16384, ge=8, description="Token budget of one micro-batch (rows x max_seq_len when packing, padded tokens otherwise)."
    )
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step (per process).")
    epochs: float = Field(1.0, gt=0, description="Passes over the training split (fractional allowed); max_steps wins when set.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate of AdamW on the LoRA parameters.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="Decay after warm-up (to 10% for cosine, 0 for linear).")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping norm (null disables).")
    eval_every: int = Field(0, ge=0, description="Evaluate every N steps (0: only at the end).")
    eval_max_batches: int | None = Field(None, ge=1, description="Cap on eval micro-batches (null: the whole eval split).")
    checkpoint_every: int = Field(0, ge=0, description="Save a resumable checkpoint every N steps (0: never mid-run).")
    keep_checkpoints: int = Field(2, ge=1, description="Most recent checkpoints kept on disk.")
    log_every: int = Field(1, ge=1, description="Steps between progress-bar updates of loss and tokens/s.")


class GuardSettings(StrictModel):
    """Checks run after training against the known silent failures; a failure is an error."""

    adapter_changes_output: bool = Field(True, description="The adapter must change the logits on a probe prompt.")
    min_logit_delta: float = Field(1e-4, ge=0, description="Smallest max |logit difference| that counts as a change.")
    probe_prompt: str | None = Field(None, description="Probe text (default: the prompt part of the first eval or train example).")
    eos: Literal["error", "warn", "off"] = Field("error", description="Whether generations must end with EOS.")
    eos_min_fraction: float = Field(0.5, gt=0, le=1, description="Share of probe generations that must emit EOS.")
    eos_probes: int = Field(4, ge=1, description="Prompts (from the eval split, else train) greedily generated for the EOS check.")
    eos_max_new_tokens: int = Field(256, ge=1, description="Generation budget in which EOS must appear.")


class DpoSettings(StrictModel):
    """Preference alignment (method: dpo) on TRL's DPOTrainer; the optimiser settings are `train`'s."""

    beta: float = Field(0.1, gt=0, description="Deviation from the reference policy (the parent): higher keeps the model closer to it.")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = Field(
        "sigmoid", description="sigmoid: DPO; ipo: IPO; hinge: SLiC; robust: DPO robust to flipped labels (with label_smoothing).")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="Assumed share of flipped preference labels (robust loss).")
    pairs_per_batch: int = Field(4, ge=1, le=1024, description="Preference pairs per micro-batch (each pair is two sequences).")


class FinetuneConfig(StrictModel):
    """One fine-tuning run: `llmfti finetune --config configs/finetune/NAME.yaml`."""

    name: str = Field(..., min_length=1, description="Model name to register the result under (a new version each run).")
    description: str = Field("", description="Free text stored with the model version.")
    base_model: str = Field(
        ..., description="Base model: a name under <home>/artifacts/models/base/, a local folder, or a Hugging Face id."
    )
    method: Literal["sft", "dpo"] = Field(
        "sft", description="sft: supervised LoRA fine-tune on encoded examples; dpo: preference alignment (DPO) on a preference dataset.")
    parent_model: str | None = Field(
        None, description="dpo: the model version NAME:N to align (an SFT version): its adapter is trained further and, frozen, is the "
        "reference policy. Null: base_model with a fresh LoRA adapter, the base model as reference.")
    dataset: str | None = Field(None, description="Training dataset as NAME:VERSION (columns input_ids, labels, split; "
                                "for dpo a preference dataset: prompt_ids, chosen_ids, rejected_ids).")
    data_path: str | None = Field(None, description="Alternative to `dataset`: a JSONL or parquet file of encoded examples.")
    eval_fraction: float = Field(
        0.05, ge=0, lt=1, description="Share held out for eval when the source has no 'split' column marking eval rows."
    )
    lora: LoraSettings = Field(default_factory=LoraSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    guards: GuardSettings = Field(default_factory=GuardSettings)
    dpo: DpoSettings = Field(default_factory=DpoSettings)
    device: str = Field("auto", description="'auto' (cuda when present), 'cpu', 'cuda' or 'cuda:N'.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="'auto': bf16 on CUDA, fp32 on CPU. 'bf16' on CPU: fp32 weights and LoRA, bf16 matmuls (autocast): "
        "about 2x faster on CPUs with native bf16 (AVX512-BF16/AMX), emulated and slow elsewhere.")
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2", "flex_attention"] = Field(
        "auto", description="'auto': flash_attention_2 on CUDA when flash-attn is installed, else sdpa."
    )
    fused_loss: bool = Field(True, description="Chunked linear + cross-entropy over loss-bearing tokens only (never full logits).")
    loss_chunk_tokens: int = Field(4096, ge=16, description="Tokens per chunk of the fused loss.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward (less memory, ~30% slower).")
    compile: bool = Field(False, description="torch.compile the decoder layers (CUDA; first steps are slower).")
    output_dir: str | None = Field(None, description="Run folder (default: <home>/artifacts/runs/finetune/<name>).")
    merge: bool = Field(False, description="Also save merged (base + adapter) weights.")

    @model_validator(mode="after")
    def _checks(self):
        if (self.dataset is None) == (self.data_path is None):
            raise ValueError("give exactly one of `dataset` (NAME:VERSION) or `data_path` (JSONL/parquet)")
        if self.dataset is not None and ":" not in self.dataset:
            raise ValueError(f"dataset {self.dataset!r} must be NAME:VERSION so the run records an exact lineage")
        if self.method == "dpo" and self.dataset is None:
            raise ValueError("method dpo trains on a preference training dataset: give `dataset` (NAME:VERSION), not data_path")
        if self.parent_model is not None:
            if self.method != "dpo":
                raise ValueError("parent_model applies to method dpo (the version to align)")
            name, _, version = self.parent_model.partition(":")
            if not name or not version.isdigit():
                raise ValueError(f"parent_model {self.parent_model!r} must be NAME:N (a registered model version)")
        t = self.train
        if t.packing and t.batch_tokens < t.max_seq_len:
            raise ValueError(f"train.batch_tokens ({t.batch_tokens}) must hold at least one row of max_seq_len ({t.max_seq_len})")
        if t.max_steps is not None and t.warmup_steps >= t.max_steps:
            raise ValueError(f"train.warmup_steps ({t.warmup_steps}) must be smaller than train.max_steps ({t.max_steps})")
        return self
