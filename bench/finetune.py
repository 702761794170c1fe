"""Benchmark: LoRA SFT throughput, MFU, peak memory and loss of llmfti's trainer against the peers a user would pick.

Sides, in ONE process, on the same random-init model shape, LoRA config (r=16, alpha=32, all-linear,
same seeded init), optimizer (AdamW, constant lr, no clipping) and synthetic SFT set (lengths
lognormal, the first 20-60% of each example is prompt with label -100; answers, drawn from a skewed
distribution so the loss can fall, end with EOS):

- naive:     a peft model in a plain loop; fixed examples per micro-batch, padded to the longest
             with an attention mask, HF's own loss from full logits (HF Trainer's default path).
- trl:       TRL `SFTTrainer(padding_free=True, completion_only_loss=True)` on the same peft model:
             TRL's padding-free collator (a micro-batch's rows flattened into one sequence with
             per-example position_ids) and TRL's own chunked fused LM head.
- trl_row:   the same with one packed row per micro-batch (more accumulation): under sdpa TRL's
             flattened sequence gets a dense mask, so this is TRL's best sdpa setting.
- trl_liger: trl plus Liger's RMSNorm/RoPE/SwiGLU kernels (`use_liger_kernel`; TRL 1.16 refuses
             Liger's fused linear+CE and keeps its own fused head). Needs CUDA and liger-kernel.
- llmfti:    `llmfti.training.Trainer` (packed rows with per-example position_ids, fused linear +
             cross-entropy over answer tokens only); `--compile` adds an llmfti_compile row.

Like with like: every side consumes, in every optimizer step, exactly the same examples (so the same
real and loss-bearing tokens): the step's rows come from llmfti's best-fit-decreasing packing; TRL gets
them as the (input_ids, labels, seq_lengths) rows its own `packing_strategy="bfd"` produces; the naive
loop gets the same examples in shuffled micro-batches with gradient accumulation. All sides use the
attention kernel `--attn` (sdpa by default) and the same dtype (bf16 weights on CUDA, fp32 on CPU; TRL
runs without autocast, as the others). A row that differs on purpose says so in its `note`.

    python bench/finetune.py --device cuda            # SmolLM2-135M and Llama-3.2-1B shapes, bf16
    python bench/finetune.py --device cpu --quick     # SmolLM2 shape, short rows, a few steps
    python bench/finetune.py --device cpu --quick --shapes tiny --steps 2   # seconds (the test)

Prints one JSON line per side and a table: useful (answer) tokens/s, MFU in two conventions, peak
memory, the last step's training loss and the held-out loss after the run (the same eval for every
side: a fast but wrong trainer shows up there), ratios against naive and TRL. MFU counts the SAME model
FLOPs for every side (the work is identical): per real token 4*N_frozen (forward + input gradient;
frozen weights get no weight gradient) + 6*N_lora, the output head (4*V*H) on answer tokens only, and
per-example causal attention (3 passes * 2 matmuls * 2 FLOPs * d_model * len/2 per token and layer).
`mfu_6n` is the cruder 6*N*tokens figure many reports use.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # finetune_setup, also when loaded by path (tests)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from finetune_setup import (SHAPES, build, eval_loss, make_examples, model_flops, peak_gb,  # noqa: E402
                            plan_steps, reset_mem, sync)
from finetune_report import checks, emit, table  # noqa: E402

# Per shape: packed rows of max_seq_len per micro-batch x micro-batches per step (llmfti and trl), and
# examples per micro-batch of the naive loop (as in the shared GPU baselines). 32k real tokens per step.
FULL = dict(mean=350, lo=64, hi=2048, max_seq_len=2048, n_examples=4000, n_eval=32, steps=10, warm=3,
            plan={"smollm2-135m": (16, 1, 16), "llama3.2-1b": (8, 2, 8), "tiny": (16, 1, 16)})
# CPU smoke run: ~1k real tokens per step.
QUICK = dict(mean=96, lo=16, hi=512, max_seq_len=512, n_examples=400, n_eval=8, steps=2, warm=1,
             plan={"smollm2-135m": (2, 1, 4), "llama3.2-1b": (2, 1, 4), "tiny": (2, 2, 4)})
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
LR = 1e-3  # high enough that a few steps move the loss visibly; the same for every side
ALL_SIDES = ("naive", "trl", "trl_row", "trl_liger", "llmfti", "llmfti_compile")


# ---- the sides ---------------------------------------------------------------------------------------------
def run_naive(ctx):
    """Padded micro-batches of `naive_micro` examples (shuffled within the step), HF loss on full logits."""
    import torch

    device, train = ctx["device"], ctx["train"]
    pm, _ = build(ctx["shape"], device, ctx["dtype"], ctx["attn"])
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=LR, fused=device.type == "cuda")
    rng = random.Random(1)
    reset_mem(device)
    rec = []
    for s, plans in enumerate(ctx["steps"]):
        if s == ctx["warm"]:
            sync(device)
            t0 = time.perf_counter()
        exs = [i for p in plans for r in p.rows for i in r]
        rng.shuffle(exs)
        n_loss = sum(p.loss_tokens for p in plans)
        loss_sum, tokens, loss_tokens = 0.0, 0, 0
        for k in range(0, len(exs), ctx["naive_micro"]):
            batch = [train[i] for i in exs[k:k + ctx["naive_micro"]]]
            L = max(len(e["input_ids"]) for e in batch)
            ids = torch.zeros((len(batch), L), dtype=torch.long)
            am = torch.zeros((len(batch), L), dtype=torch.long)
            lab = torch.full((len(batch), L), -100, dtype=torch.long)
            for r, e in enumerate(batch):
                n = len(e["input_ids"])
                ids[r, :n], am[r, :n], lab[r, :n] = torch.tensor(e["input_ids"]), 1, torch.tensor(e["labels"])
                tokens += n
                loss_tokens += sum(1 for x in e["labels"][1:] if x != -100)
            # num_items_in_batch: the loss is sum / (answer tokens of the whole step), as HF Trainer does.
            out = pm(input_ids=ids.to(device), attention_mask=am.to(device), labels=lab.to(device),
                     num_items_in_batch=n_loss, use_cache=False)
            out.loss.backward()
            loss_sum = loss_sum + out.loss.detach() * n_loss
        opt.step()
        opt.zero_grad(set_to_none=True)
        rec.append((tokens, loss_tokens, float(loss_sum) / max(1, loss_tokens)))
    sync(device)
    dt = time.perf_counter() - t0
    note = f"padded, {ctx['naive_micro']} examples/micro-batch, HF loss on full logits"
    return finish(ctx, "naive", pm, rec, dt, peak_gb(device), note)


def run_llmfti(ctx, compile_=False):
    from llmfti.config import FinetuneConfig
    from llmfti.training.trainer import Trainer

    device = ctx["device"]
    pm, _ = build(ctx["shape"], device, ctx["dtype"], ctx["attn"])
    fc = FinetuneConfig(
        name="bench", base_model="random", data_path="unused.jsonl", device=str(device), compile=compile_,
        train={"max_seq_len": ctx["max_seq_len"], "batch_tokens": ctx["rows"] * ctx["max_seq_len"], "grad_accum": ctx["accum"],
               "max_steps": len(ctx["steps"]), "lr": LR, "schedule": "constant", "max_grad_norm": None, "seed": 0},
    )
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(fc, pm, ctx["train"], [], pad_id=0, device=device, run_dir=tmp, dataset_ref="bench", progress=False)
        reset_mem(device)
        rec = []
        for s in range(len(ctx["steps"])):
            if s == ctx["warm"]:
                sync(device)
                t0 = time.perf_counter()
            r = tr.train_step(s)
            rec.append((r["tokens"], r["loss_tokens"], r["loss"]))
        sync(device)
        dt = time.perf_counter() - t0
    note = f"packed rows ({ctx['rows']}x{ctx['max_seq_len']}/micro-batch), fused loss on answer tokens"
    if compile_:
        note += "; torch.compile of the decoder layers (differs: the point of the row)"
    return finish(ctx, "llmfti_compile" if compile_ else "llmfti", pm, rec, dt, peak_gb(device), note)


def bench_tokenizer():
    """A minimal tokenizer for SFTTrainer (the data is pre-tokenized; only pad/eos ids are read)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={"<pad>": 0, "<s>": 1, "</s>": 2}, unk_token="<pad>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def run_trl(ctx, variant="trl"):
    """TRL SFTTrainer, padding-free, completion-only loss, fed the step plan's rows in order."""
    import torch

    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    device, train, warm, n_steps = ctx["device"], ctx["train"], ctx["warm"], len(ctx["steps"])
    per_micro, accum = (1, ctx["rows"] * ctx["accum"]) if variant == "trl_row" else (ctx["rows"], ctx["accum"])
    rows = []  # in step order; a sequential sampler makes TRL's step s consume exactly the plan's step s
    for plans in ctx["steps"]:
        for p in plans:
            for r in p.rows:
                rows.append({"input_ids": [t for i in r for t in train[i]["input_ids"]],
                             "labels": [t for i in r for t in train[i]["labels"]],
                             "seq_lengths": [len(train[i]["input_ids"]) for i in r]})
    pm, _ = build(ctx["shape"], device, ctx["dtype"], ctx["attn"])
    counts, losses, clock = [], [], {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step in (warm, n_steps):
                sync(device)
                clock[state.global_step] = time.perf_counter()

    class BenchSFT(SFTTrainer):
        def _get_train_sampler(self, *args, **kwargs):  # in order: step s gets the plan's step s
            return torch.utils.data.SequentialSampler(self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # TRL's loss is sum / num_items_in_batch (the step's answer tokens); keep the sum, no host sync here.
            scale = num_items_in_batch if num_items_in_batch is not None else (inputs["labels"][:, 1:] != -100).sum()
            losses.append(loss.detach() * scale)
            return loss

    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(
            output_dir=tmp, per_device_train_batch_size=per_micro, gradient_accumulation_steps=accum, max_steps=n_steps,
            learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=0.0,
            optim="adamw_torch_fused" if device.type == "cuda" else "adamw_torch", seed=0,
            bf16=False, fp16=False,  # no autocast: the weights are already in the compute dtype, as on the other sides
            gradient_checkpointing=False, padding_free=True, packing=False, max_length=None, completion_only_loss=True,
            dataset_kwargs={"skip_prepare_dataset": True},
            use_liger_kernel=variant == "trl_liger", use_cpu=device.type == "cpu",
            logging_steps=10**6, save_strategy="no", report_to="none", disable_tqdm=True,
            dataloader_num_workers=0, dataloader_pin_memory=device.type == "cuda",
        )
        tr = BenchSFT(model=pm, args=args, train_dataset=Dataset.from_list(rows), processing_class=bench_tokenizer(),
                      callbacks=[Clock()])
        collate = tr.data_collator

        def counting(features):  # what TRL actually feeds: real tokens and answer tokens per micro-batch
            out = collate(features)
            counts.append((int(out["position_ids"].shape[1]), int((out["labels"][:, 1:] != -100).sum())))
            return out

        tr.data_collator = counting
        reset_mem(device)
        with _answer_only_head(device):
            tr.train()
        sync(device)
        peak = peak_gb(device)
    rec = []
    for s in range(n_steps):
        c = counts[s * accum:(s + 1) * accum]
        lt = sum(x[1] for x in c)
        rec.append((sum(x[0] for x in c), lt, float(sum(losses[s * accum:(s + 1) * accum])) / max(1, lt)))
    dt = clock[n_steps] - clock[warm]
    note = {"trl": f"padding-free: {per_micro} rows flattened into one sequence per micro-batch, TRL fused LM head",
            "trl_row": f"padding-free, 1 row/micro-batch x {accum} (micro-batch differs: sdpa-friendly TRL setting)",
            "trl_liger": "as trl + Liger RMSNorm/RoPE/SwiGLU Triton kernels (kernels differ: the point of the row)"}[variant]
    if device.type != "cuda":
        note += "; off CUDA, TRL's CUDA path (head on answer tokens only) switched on, as llmfti's"
    if ctx["attn"] in ("sdpa", "eager") and per_micro > 1:
        note += f"; under {ctx['attn']} the flattened sequence gets a dense mask"
    return finish(ctx, variant, pm, rec, dt, peak, note)


@contextlib.contextmanager
def _answer_only_head(device):
    """TRL's fused head scores only answer positions on Triton devices (CUDA) but every position elsewhere.
    Off CUDA, switch its CUDA choice on, so that its head does the same work as on the GPU and as llmfti's."""
    if device.type == "cuda":
        yield
        return
    import trl.trainer.utils as tu

    saved = tu._use_triton
    tu._use_triton = lambda _device: True  # only read to choose the compact (answer-only) path
    try:
        yield
    finally:
        tu._use_triton = saved


def finish(ctx, side, pm, rec, dt, peak, note):
    """One result row from per-step records (real tokens, answer tokens, train loss) of the timed steps."""
    timed = rec[ctx["warm"]:]
    useful = sum(r[1] for r in timed)
    return dict(shape=ctx["shape"], side=side, attn=ctx["attn"], tokens_per_step=[r[0] for r in rec],
                loss_tokens_per_step=[r[1] for r in rec], useful_tok_s=useful / dt, tok_s=sum(r[0] for r in timed) / dt,
                flops_s=ctx["flops"] / dt, flops6n_s=ctx["flops6n"] / dt, peak_gb=peak,
                train_loss_first=rec[0][2], train_loss_last=rec[-1][2],
                eval_loss=eval_loss(pm, ctx["evals"], ctx["device"]), note=note)


def side_available(side, device):
    """None when the side can run here, else why not."""
    import importlib.util

    if side.startswith("trl") and importlib.util.find_spec("trl") is None:
        return "trl not installed (pip install -e '.[bench]')"
    if side == "trl_liger":
        if device.type != "cuda":
            return "Liger kernels are Triton/CUDA only (cannot run on CPU)"
        if importlib.util.find_spec("liger_kernel") is None:
            return "liger-kernel not installed"
    if side == "llmfti_compile" and device.type != "cuda":
        return "llmfti compiles on CUDA only"
    return None


def run_side(ctx, side):
    if side == "naive":
        return run_naive(ctx)
    if side in ("llmfti", "llmfti_compile"):
        return run_llmfti(ctx, compile_=side == "llmfti_compile")
    if side == "trl_liger":  # Liger patches transformers' llama module globally: restore it for the next sides
        from transformers.models.llama import modeling_llama

        saved = dict(vars(modeling_llama))
        try:
            return run_trl(ctx, side)
        finally:
            vars(modeling_llama).update(saved)
    return run_trl(ctx, side)


# ---- driver ------------------------------------------------------------------------------------------------
def run_benchmark(device="cuda", quick=False, shapes=None, sides=None, steps=None, warm=None, attn="sdpa",
                  peak_tflops=None, out=None, log=print, compile_=False):
    """Run every side on every shape; returns the result rows (also logged as JSON lines)."""
    import torch

    device = torch.device(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    mode = QUICK if quick else FULL
    shapes = shapes or (["smollm2-135m"] if quick else ["smollm2-135m", "llama3.2-1b"])
    if sides is None:
        sides = [s for s in ALL_SIDES if s != "llmfti_compile"]
    if compile_ and "llmfti_compile" not in sides:
        sides = [*sides, "llmfti_compile"]
    steps = mode["steps"] if steps is None else steps
    warm = mode["warm"] if warm is None else warm
    if warm < 1 or steps < 1:
        raise SystemExit("--warm and --steps must be at least 1 (timing starts after the warm-up steps)")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    header = dict(device=name, torch=torch.__version__, dtype=str(dtype).replace("torch.", ""), attn=attn, quick=quick,
                  steps=steps, warm=warm, lr=LR, threads=torch.get_num_threads(), sides=sides)
    for mod in ("transformers", "peft", "trl", "liger_kernel"):
        try:
            header[mod] = __import__(mod).__version__
        except Exception:
            header[mod] = None
    emit(header, out, log)
    results = []
    for shape in shapes:
        rows, accum, naive_micro = mode["plan"][shape]
        vocab = SHAPES[shape]["vocab_size"]
        data = make_examples(mode["n_examples"] + mode["n_eval"], vocab, mode["mean"], mode["lo"], mode["hi"])
        train, evals = data[:mode["n_examples"]], data[mode["n_examples"]:]
        plan = plan_steps(train, rows, accum, mode["max_seq_len"], warm + steps)
        timed = [i for st in plan[warm:] for p in st for r in p.rows for i in r]
        ctx = dict(shape=shape, device=device, dtype=dtype, attn=attn, train=train, evals=evals, steps=plan, warm=warm,
                   rows=rows, accum=accum, naive_micro=naive_micro, max_seq_len=mode["max_seq_len"])
        pm, cfg = build(shape, device, dtype, attn)
        ctx["flops"], ctx["flops6n"] = model_flops(cfg, pm, [len(train[i]["input_ids"]) for i in timed],
                                                   sum(p.loss_tokens for st in plan[warm:] for p in st))
        start = eval_loss(pm, evals, device)
        del pm
        reset_mem(device)
        emit(dict(shape=shape, rows_per_micro=rows, micro_per_step=accum, naive_examples_per_micro=naive_micro,
                  max_seq_len=mode["max_seq_len"], real_tokens_per_step=sum(p.tokens for p in plan[0]),
                  eval_loss_start=round(start, 4)), out, log)
        for side in sides:
            why = side_available(side, device)
            if why:
                r = dict(shape=shape, side=side, skipped=why)
            else:
                try:
                    r = run_side(ctx, side)
                    if peak:
                        r["mfu"], r["mfu_6n"] = r["flops_s"] / (peak * 1e12), r["flops6n_s"] / (peak * 1e12)
                except Exception as exc:  # one broken side must not cost the others' figures (one-shot GPU runs)
                    traceback.print_exc()
                    r = dict(shape=shape, side=side, error=f"{type(exc).__name__}: {str(exc)[:400]}")
                reset_mem(device)
            r["eval_loss_start"] = start
            results.append(r)
            emit(r, out, log)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="SmolLM2 shape, rows of 512, a few steps (CPU smoke run)")
    ap.add_argument("--shapes", nargs="*", choices=list(SHAPES), help="default: both GPU shapes (the 135M one with --quick)")
    ap.add_argument("--sides", nargs="*", choices=ALL_SIDES, help="default: all but llmfti_compile")
    ap.add_argument("--steps", type=int, default=None, help="timed optimizer steps")
    ap.add_argument("--warm", type=int, default=None, help="untimed warm-up steps")
    ap.add_argument("--compile", action="store_true", help="add an llmfti_compile row (torch.compile of the layers, CUDA)")
    ap.add_argument("--attn", default="sdpa", help="attention kernel of EVERY side: sdpa, eager, flex_attention, flash_attention_2")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 dense TFLOP/s of the card (MFU)")
    ap.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = ap.parse_args(argv)
    results = run_benchmark(args.device, args.quick, args.shapes, args.sides, args.steps, args.warm, args.attn,
                            args.peak_tflops, args.out, compile_=args.compile)
    dev = 'cuda' if args.device.startswith('cuda') else args.device
    print(table(results))
    print(checks(results, dev))


if __name__ == "__main__":
    main()
