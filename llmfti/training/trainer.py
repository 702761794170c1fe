"""The LoRA training loop: AdamW on the adapter, gradient accumulation, schedule, eval, checkpoints.

    trainer = Trainer(cfg, peft_model, train_examples, eval_examples, pad_id=..., device=..., run_dir=...)
    metrics = trainer.fit(resume=True)

Step s consumes micro-batches [s*A*W, (s+1)*A*W) of a deterministic stream (epoch e is planned with
seed+e), rank r taking every W-th one. Each micro-batch's loss SUM is divided by the loss-token count
of the whole step (known on every rank from the plan, no communication), times W because DDP
averages gradients: every answer token weighs the same, however examples were packed.
Progress (loss, tokens/s of all and of loss-bearing tokens) goes to stderr on rank 0.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from llmfti.training import checkpoint, distributed
from llmfti.training.packing import BatchPlan, collate, plan_batches


def lr_lambda(schedule: str, warmup: int, total: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        frac = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "linear":
            return 1.0 - frac
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac))  # cosine to 10% of peak

    return f


class Trainer:
    def __init__(self, cfg, peft_model, train, evals, *, pad_id: int, device, run_dir, dataset_ref: str, data_hash: str | None = None,
                 dist=None, progress=True, autocast=None):
        import torch

        from llmfti.training.model_setup import build_loss_model, compile_layers

        self.cfg, self.t = cfg, cfg.train
        self.peft_model, self.train, self.evals = peft_model, train, evals
        self.pad_id, self.device, self.run_dir = pad_id, device, Path(run_dir)
        self.dist = dist or distributed.Dist()
        self.progress = progress and self.dist.main
        self.key = checkpoint.resume_key(cfg, dataset_ref, data_hash)
        if cfg.gradient_checkpointing:
            base = peft_model.get_base_model()
            # transformers 5.x renamed it (the old name warns and goes in v6); older releases have only the old one.
            if hasattr(base, "activation_checkpointing_enable"):
                base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.compile and device.type == "cuda":
            compile_layers(peft_model)
        self.loss_model = build_loss_model(peft_model, fused=cfg.fused_loss, chunk=cfg.loss_chunk_tokens)
        self.autocast = autocast  # a dtype: matmuls under torch.autocast (CPU bf16), weights stay fp32
        self.model = distributed.wrap(self.loss_model, self.dist, device)
        params = [p for p in peft_model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("no trainable parameters: the LoRA target modules matched nothing")
        self.params = params
        self.optimizer = torch.optim.AdamW(
            params, lr=self.t.lr, weight_decay=self.t.weight_decay, betas=(0.9, 0.999), fused=device.type == "cuda"
        )
        self._plans: dict[int, list[BatchPlan]] = {}
        self._lens: dict[int, int] = {}
        self.per_step = self.t.grad_accum * self.dist.world
        self.total_steps = self._total_steps()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(self.t.schedule, self.t.warmup_steps, self.total_steps)
        )
        self.history: list[dict] = []

    # ---- data stream -------------------------------------------------------------------------
    def _epoch_plans(self, epoch: int) -> list[BatchPlan]:
        if epoch not in self._plans:
            if len(self._plans) > 2:  # the stream only moves forward: keep the current and next epoch
                self._plans.pop(min(self._plans))
            self._plans[epoch] = plan_batches(
                self.train, max_seq_len=self.t.max_seq_len, batch_tokens=self.t.batch_tokens,
                packing=self.t.packing, seed=self.t.seed + epoch,
            )
        return self._plans[epoch]

    def _total_steps(self) -> int:
        if self.t.max_steps:
            return self.t.max_steps
        n = len(self._epoch_plans(0))
        return max(1, int(self.t.epochs * n) // self.per_step)

    def _micro(self, m: int) -> BatchPlan:
        """Micro-batch m of the stream; epochs may differ in length when not packing."""
        epoch = 0
        while m >= self._epoch_len(epoch):
            m -= self._epoch_len(epoch)
            epoch += 1
        return self._epoch_plans(epoch)[m]

    def _epoch_len(self, epoch: int) -> int:
        if epoch not in self._lens:
            self._lens[epoch] = len(self._epoch_plans(epoch))
        return self._lens[epoch]

    def _step_plans(self, step: int) -> list[BatchPlan]:
        """All A*W micro-batches of `step` (every rank needs the token total of the whole step)."""
        return [self._micro(m) for m in range(step * self.per_step, (step + 1) * self.per_step)]

    # ---- one optimizer step ------------------------------------------------------------------
    def train_step(self, step: int) -> dict:
        """One optimizer step (0-based `step`); returns its record (loss, tokens, lr, grad_norm)."""
        import torch

        all_plans = self._step_plans(step)
        step_loss_tokens = max(1, sum(p.loss_tokens for p in all_plans))
        mine = all_plans[self.dist.rank :: self.dist.world]
        loss_sum, tokens, loss_tokens = 0.0, 0, 0
        self.model.train()
        for i, plan in enumerate(mine):
            batch = collate(self.train, plan, pad_id=self.pad_id, device=self.device)
            sync = i == len(mine) - 1
            ctx = self.model.no_sync() if (self.dist.enabled and not sync) else _null()
            with ctx:
                with self._autocast():
                    s, n = self.model(**batch)
                (s * (self.dist.world / step_loss_tokens)).backward()
            loss_sum = loss_sum + s.detach()  # stays on device: one host sync per step, not per micro-batch
            tokens += plan.tokens
            loss_tokens += n
        grad_norm = None
        if self.t.max_grad_norm:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.t.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, tokens, loss_tokens = distributed.all_sum([float(loss_sum), tokens, loss_tokens], self.dist, self.device)
        return {"step": step + 1, "loss": loss_sum / max(1, loss_tokens), "tokens": int(tokens),
                "loss_tokens": int(loss_tokens), "lr": self.scheduler.get_last_lr()[0], "grad_norm": grad_norm}

    def _autocast(self):
        import torch

        if self.autocast is None:
            return _null()
        return torch.autocast(self.device.type, dtype=self.autocast)

    # ---- evaluation --------------------------------------------------------------------------
    def evaluate(self) -> float | None:
        """Mean token loss over the eval split (None without one)."""
        import torch

        if not self.evals:
            return None
        plans = plan_batches(self.evals, max_seq_len=self.t.max_seq_len, batch_tokens=self.t.batch_tokens,
                             packing=self.t.packing, seed=0)
        if self.t.eval_max_batches:
            plans = plans[: self.t.eval_max_batches]
        self.model.eval()
        total, n = 0.0, 0
        with torch.no_grad():
            for plan in plans[self.dist.rank :: self.dist.world]:
                with self._autocast():
                    s, k = self.loss_model(**collate(self.evals, plan, pad_id=self.pad_id, device=self.device))
                total += float(s)
                n += k
        total, n = distributed.all_sum([total, n], self.dist, self.device)
        return total / n if n else None

    # ---- the run -----------------------------------------------------------------------------
    def fit(self, *, resume: bool = True) -> dict:
        import torch

        start, resumed_from = 0, None
        ckpt = checkpoint.latest(self.run_dir) if resume else None
        if ckpt is not None:
            state = checkpoint.load(ckpt, peft_model=self.peft_model, optimizer=self.optimizer,
                                    scheduler=self.scheduler, key=self.key, device=self.device)
            start, self.history, resumed_from = state["step"], state["history"], str(ckpt)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        # The eval loss before any update is the fair baseline for "did training help" (same examples).
        eval_start = self.evaluate() if resumed_from is None else None
        bar = _Progress(self.total_steps, start, enabled=self.progress)
        t0, tok, ltok, last = time.perf_counter(), 0, 0, None
        eval_loss = None
        try:
            for step in range(start, self.total_steps):
                rec = self.train_step(step)
                tok += rec["tokens"]
                ltok += rec["loss_tokens"]
                dt = time.perf_counter() - t0
                rec["tokens_per_s"], rec["loss_tokens_per_s"] = tok / dt, ltok / dt
                done = rec["step"]
                if self.t.eval_every and done % self.t.eval_every == 0 and done < self.total_steps:
                    rec["eval_loss"] = eval_loss = self.evaluate()
                self.history.append(rec)
                last = rec
                if done % self.t.log_every == 0 or done == self.total_steps:
                    bar.update(done, rec)
                if self.t.checkpoint_every and done % self.t.checkpoint_every == 0 and done < self.total_steps:
                    self._checkpoint(done)
        finally:
            bar.close()
        wall = time.perf_counter() - t0
        eval_loss = self.evaluate()
        metrics = {
            "steps": self.total_steps,
            "resumed_from": resumed_from,
            "train_loss_first": self.history[0]["loss"] if self.history else None,
            "train_loss_final": last["loss"] if last else (self.history[-1]["loss"] if self.history else None),
            "eval_loss_start": eval_start,
            "eval_loss": eval_loss,
            "tokens": tok,
            "loss_tokens": ltok,
            "wall_s": round(wall, 3),
            "tokens_per_s": tok / wall if wall > 0 else None,
            "loss_tokens_per_s": ltok / wall if wall > 0 else None,
            "world_size": self.dist.world,
        }
        if self.device.type == "cuda":
            metrics["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 3)
        return metrics

    def _checkpoint(self, step: int) -> None:
        if self.dist.main:
            checkpoint.save(self.run_dir, step, peft_model=self.peft_model, optimizer=self.optimizer,
                            scheduler=self.scheduler, key=self.key, history=self.history, keep=self.t.keep_checkpoints)
        distributed.barrier(self.dist)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Progress:
    """A rich progress bar on stderr with loss and tokens/s; silent when disabled (other ranks, tests)."""

    def __init__(self, total: int, start: int, enabled: bool):
        self.p = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(TextColumn("finetune"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                          TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self.p.start()
        self.task = self.p.add_task("train", total=total, completed=start, info="")

    def update(self, done: int, rec: dict) -> None:
        if self.p is not None:
            info = (f"loss {rec['loss']:.4f}  {rec['tokens_per_s']:,.0f} tok/s  "
                    f"{rec['loss_tokens_per_s']:,.0f} answer tok/s  lr {rec['lr']:.2e}")
            if rec.get("eval_loss") is not None:
                info += f"  eval {rec['eval_loss']:.4f}"
            self.p.update(self.task, completed=done, info=info)

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()
