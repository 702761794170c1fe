"""Fine-tune a base model with LoRA on an encoded training dataset and register the result
(`method: dpo`: align a model version on a preference dataset with DPO, on TRL).

Resumes the latest unfinished run of the same name from its last checkpoint (--no-resume starts over).
Guards run after training: an adapter that does not change the output, or a model that never emits
EOS, is an error (exit code 6). Multi-GPU: `torchrun --nproc-per-node N -m llmfti finetune ...`
or `accelerate launch --num_processes N -m llmfti finetune ...`, with no other change.
"""

from __future__ import annotations

from typing import List

import typer

from llmfti.cli.output import console, emit, esc, home_of

JSON = typer.Option(False, "--json", help="Print one JSON document on stdout (progress goes to stderr).")


def finetune(
    ctx: typer.Context,
    config: str = typer.Option(..., "--config", "-c", help="configs/finetune/NAME.yaml"),
    set_: List[str] = typer.Option([], "--set", help="Override a config value, e.g. --set train.max_steps=100"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue the latest unfinished run of this name."),
    merge: bool = typer.Option(False, "--merge", help="Also save merged (base + adapter) weights."),
    json_out: bool = JSON,
):
    import os

    from llmfti.config import FinetuneConfig, load_config
    from llmfti.pipelines.training import finetune as run

    cfg = load_config(FinetuneConfig, config, set_)
    result = run(cfg, home=home_of(ctx), resume=resume, merge=merge or None, progress=True)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # one JSON document per launch: other ranks stay quiet
    emit(result, json_out, _render)


def _render(r: dict) -> None:
    if r.get("method") == "dpo":
        return _render_dpo(r)
    out = console()
    m = r["metrics"]
    out.print(f"[bold]{r['name']}[/] trained {m['steps']} steps in {m['wall_s']:.1f}s on {m['device']} ({m['dtype']}, {m['attn_implementation']})")
    if m.get("resumed_from"):
        out.print(f"  resumed from {m['resumed_from']}")
    ev = f"{m['eval_loss']:.4f}" if m.get("eval_loss") is not None else "n/a"
    ev0 = f"{m['eval_loss_start']:.4f}" if m.get("eval_loss_start") is not None else "n/a"
    out.print(f"  train loss {m['train_loss_first']:.4f} -> {m['train_loss_final']:.4f}; eval loss {ev0} -> {ev}")
    out.print(f"  {m['tokens_per_s']:,.0f} tok/s, {m['loss_tokens_per_s']:,.0f} answer tok/s")
    out.print(f"  adapter {r['adapter_dir']} (sha256 {r['adapter_sha256'][:12]})")
    if r.get("merged_dir"):
        out.print(f"  merged weights {r['merged_dir']}")
    g = r.get("guards", {})
    if "eos" in g and g["eos"].get("checked"):
        out.print(f"  guards: adapter changes outputs (max delta {g.get('adapter_logit_delta', 0):.3g}); "
                  f"EOS in {g['eos']['with_eos']}/{g['eos']['probes']} probe generations")
        if g["eos"].get("warning"):
            out.print(f"  [yellow]warning:[/] {esc(g['eos']['warning'])}")
    _print_registration(out, r["registration"])


def _render_dpo(r: dict) -> None:
    out = console()
    m, g = r["metrics"], r.get("guards", {})
    parent = (r.get("parent") or {}).get("ref") or f"base model {r['base_model']}"
    out.print(f"[bold]{r['name']}[/] aligned (DPO) from {esc(parent)} on {esc(r['training_dataset'])}: {m['steps']} steps in {m['wall_s']:.1f}s "
              f"on {m['device']} ({m['dtype']})")

    def f(v):
        return "n/a" if v is None else f"{v:.4f}"

    out.print(f"  train loss {f(m.get('train_loss_first'))} -> {f(m.get('train_loss_final'))}; on the {m['preference_eval_split']} pairs: "
              f"loss {f(m.get('eval_loss_start'))} -> {f(m.get('eval_loss_end'))}, reward margin {f(m.get('eval_margins_start'))} -> "
              f"{f(m.get('eval_margins_end'))}, accuracy {f(m.get('eval_accuracies_start'))} -> {f(m.get('eval_accuracies_end'))}")
    out.print(f"  adapter {r['adapter_dir']} (sha256 {r['adapter_sha256'][:12]})")
    if "policy_logit_delta" in g:
        out.print(f"  guards: the adapter changes outputs relative to {esc(parent)} (max delta {g['policy_logit_delta']:.3g})"
                  + (f"; EOS in {g['eos']['with_eos']}/{g['eos']['probes']} probe generations" if g.get("eos", {}).get("checked") else ""))
    if g.get("eos", {}).get("warning"):
        out.print(f"  [yellow]warning:[/] {esc(g['eos']['warning'])}")
    _print_registration(out, r["registration"])


def _print_registration(out, reg: dict) -> None:
    if reg.get("registered"):
        out.print(f"  registered as [bold]{reg.get('ref')}[/]")
    else:
        out.print(f"  [yellow]not registered:[/] {esc(reg.get('reason'))}")
