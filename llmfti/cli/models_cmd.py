"""`llmfti models`: base models and model versions.

    llmfti models pull-defaults                       # embedded defaults, registered as base models
    llmfti models import ./my-model --name mine       # folder, .gguf file or hub id; also creates mine:1
    llmfti models list
    llmfti models show mine:1                         # with full lineage
    llmfti models card mine:1 > MODEL_CARD.md
    llmfti models check mine:1                        # hashes + fingerprints, no weights loaded; exit 4 on mismatch
    llmfti models set-status mine:1 production
"""

from __future__ import annotations

from typing import Optional

import typer

from llmfti.cli.output import console, emit, esc, home_of, table

app = typer.Typer(help="Models: pull the embedded defaults, import base models, inspect and verify versions.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")
REF = typer.Argument(..., help="NAME (latest version), NAME:VERSION or NAME:<status>, e.g. NAME:production.")


def _registry(ctx):
    from llmfti.registry import ModelRegistry

    return ModelRegistry(home_of(ctx))


def _short(mv) -> dict:
    return {
        "ref": mv.ref, "name": mv.name, "version": mv.version, "base_model": mv.base_model, "status": mv.status,
        "adapter": bool(mv.adapter_sha256), "prompt_template": mv.prompt_template, "training_dataset": mv.training_dataset,
        "encoder_fingerprint": mv.encoder_fingerprint, "created_at": mv.created_at,
    }


def _base_summary(b: dict) -> dict:
    return {k: v for k, v in b.items() if k != "files"}


@app.command("pull-defaults")
def pull_defaults(ctx: typer.Context, json_out: bool = JSON):
    """Make the embedded default embedder (all-MiniLM-L6-v2) and generator (SmolLM2-135M-Instruct,
    imported once from GGUF into safetensors and registered as base model and version 1) available
    in the project home. Idempotent, offline."""
    from llmfti.home import ProjectHome
    from llmfti.registry.defaults import pull_defaults as pull

    err = console(stderr=True)
    with err.status("preparing embedded default models (the first GGUF import takes ~30 s)..."):
        models = pull(ProjectHome.at(home_of(ctx)))
    emit({"models": models}, json_out, lambda d: [console().print(f"{m['name']}: {m['status']} ({m['path']})") for m in d["models"]])


@app.command("import")
def import_(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="A local model folder, a .gguf file, or a Hugging Face id (needs a hub or cache)."),
    name: str = typer.Option(..., "--name", "-n", help="Registry name (letters, digits, '_', '-', '.')."),
    license: Optional[str] = typer.Option(None, "--license", help="License id when the source does not say."),
    version: bool = typer.Option(True, "--version/--no-version", help="Also register NAME:1, the base model served as is."),
    prompt_template: str = typer.Option("rag-default", "--prompt-template", "-p", help="Prompt template of that version (configs/prompts/NAME.yaml)."),
    json_out: bool = JSON,
):
    """Import a base model into artifacts/models/base/NAME/ and record its source, weights hash,
    tokenizer and chat-template fingerprints, architecture, size, context length and license."""
    from llmfti.errors import ConfigError

    reg = _registry(ctx)
    with console(stderr=True).status(f"importing {source} ..."):
        base = reg.import_base_model(source, name, license=license)
        try:
            mv = reg.ensure_base_version(name, prompt_template) if version else None
        except ConfigError as exc:  # e.g. a base LM without a chat template: the base import still stands
            raise ConfigError(f"imported base model {name!r}, but cannot register {name}:1: {exc}", hint="use --no-version, or give the tokenizer a chat template") from exc
    data = {"base_model": _base_summary(base), "model_version": _short(mv) if mv else None}

    def render(d):
        b = d["base_model"]
        console().print(f"base model [bold]{b['name']}[/]: {b['status']} ({b['architecture']}, {b['parameters']} parameters, context {b['context_length']}) at {esc(b['path'])}")
        if d["model_version"]:
            console().print(f"model version [bold]{d['model_version']['ref']}[/] serves it with prompt template {d['model_version']['prompt_template']}")

    emit(data, json_out, render)


@app.command("list")
def list_(ctx: typer.Context, json_out: bool = JSON):
    """Base models and model versions."""
    reg = _registry(ctx)
    data = {"base_models": [_base_summary(b) for b in reg.list_base_models()], "model_versions": [_short(mv) for mv in reg.list()]}

    def render(d):
        t = table("base model", "architecture", "parameters", "context", "license", "source")
        for b in d["base_models"]:
            t.add_row(b["name"], b["architecture"], str(b["parameters"]), str(b["context_length"]), b["license"] or "-", b["source"])
        v = table("model version", "status", "base", "adapter", "prompt", "dataset", "fingerprint")
        for m in d["model_versions"]:
            v.add_row(m["ref"], m["status"], m["base_model"], "yes" if m["adapter"] else "-", m["prompt_template"], m["training_dataset"] or "-", m["encoder_fingerprint"][:12])
        console().print(t if d["base_models"] else "no base models yet: llmfti models import SOURCE --name NAME")
        if d["model_versions"]:
            console().print(v)

    emit(data, json_out, render)


@app.command()
def show(ctx: typer.Context, ref: str = REF, json_out: bool = JSON):
    """A model version with its full lineage (base model, dataset and its feature-group commits), or a base model."""
    from llmfti.errors import NotFoundError
    from llmfti.registry import parse_model_ref

    reg = _registry(ctx)
    try:
        data = {"model_version": reg.describe(ref)}
    except NotFoundError:
        name, version = parse_model_ref(ref)
        base = reg.get_base(name, must_exist=False) if version is None else None
        if base is None:
            raise
        data = {"base_model": _base_summary(base)}
    emit(data, json_out, _render_show)


def _abbrev(h) -> str:
    return f"{h[:12]}…" if isinstance(h, str) and len(h) > 12 else str(h)


def _render_show(d: dict) -> None:
    """A model version (or base model) as a person reads it; everything else is in --json."""
    out = console()
    if "base_model" in d:
        b = d["base_model"]
        out.print(f"[bold]{esc(b['name'])}[/] (base model) from {esc(b.get('source'))}")
        out.print(f"  weights sha256 {_abbrev(b.get('weights_sha256') or b.get('source_sha256'))} at {esc(b.get('path'))}")
        return
    mv = d["model_version"]
    out.print(f"[bold]{esc(mv['ref'])}[/] ({mv['status']}, created {str(mv['created_at'])[:19]})")
    base = (mv.get("lineage") or {}).get("base_model") or {}
    out.print(f"  base model    {esc(mv['base_model'])} (weights sha256 {_abbrev(base.get('weights_sha256'))})")
    if mv.get("adapter_sha256"):
        out.print(f"  adapter       sha256 {_abbrev(mv['adapter_sha256'])} at {esc(mv['path'])}")
    out.print(f"  prompt        {esc(mv['prompt_template'])} v{mv['prompt_template_version']}, encoder {_abbrev(mv['encoder_fingerprint'])}, "
              f"budget {mv['max_prompt_tokens']}/{mv['max_answer_tokens']} tokens")
    ds = ((mv.get("lineage") or {}).get("training_dataset") or {}).get("dataset") or {}
    if mv.get("training_dataset"):
        records, ctx = ds.get("records") or {}, ds.get("contexts") or {}
        where = f"records {records.get('feature_group')} @ commit {records.get('commit')}" if records else ""
        where += f", contexts {ctx.get('feature_group')} @ commit {ctx.get('commit')}" if ctx else ""
        out.print(f"  trained on    {esc(mv['training_dataset'])}" + (f" ({esc(where)})" if where else ""))
    m = mv.get("metrics") or {}
    if "eval_loss" in m:
        out.print(f"  training      eval loss {m.get('eval_loss_start', float('nan')):.3f} -> {m['eval_loss']:.3f}, {m.get('steps')} steps, "
                  f"{m.get('tokens')} tokens at {m.get('tokens_per_s', 0):.0f} tok/s")
    for ev in (mv.get("evals") or [])[-5:]:
        verdict = "[green]pass[/]" if ev.get("passed") else f"[red]FAIL[/] ({esc(', '.join(ev.get('failing') or []))})"
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted((ev.get("metrics") or {}).items()) if isinstance(v, (int, float)))
        out.print(f"  eval          {esc(ev['suite'])}@{esc(ev.get('suite_version'))}: {verdict}; {esc(metrics)}")
    out.print("  (llmfti models show REF --json: the full lineage)", style="dim")


@app.command()
def card(ctx: typer.Context, ref: str = REF, output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the card to this file."), json_out: bool = JSON):
    """A Markdown model card generated from the registry: intended use, lineage, metrics, evals, limitations."""
    reg = _registry(ctx)
    mv = reg.get(ref)
    text = reg.model_card(mv.ref)
    if output:
        from pathlib import Path

        Path(output).write_text(text, encoding="utf-8")
    emit({"ref": mv.ref, "markdown": text, "output": output}, json_out, lambda d: console().print(f"wrote {output}") if output else print(text))


@app.command()
def check(ctx: typer.Context, ref: str = REF, json_out: bool = JSON):
    """Verify artifact hashes and the encoder fingerprint (tokenizer files, chat template, prompt template,
    budget) without loading weights for serving. Exits 4 naming what differs."""
    report = _registry(ctx).check(ref)  # CheckFailed (exit 4) carries the report into the one JSON document

    def render(d):
        for item in d["checks"]:
            console().print(f"[green]ok[/]   {item['check']}" if item["ok"] else f"[red]FAIL[/] {item['check']}: {esc(item['detail'])}")
        console().print(f"[bold]{d['ref']}[/]: all checks passed")

    emit(report.to_dict(), json_out, render)


@app.command("set-status")
def set_status(ctx: typer.Context, ref: str = REF, status: str = typer.Argument(..., help="registered, staging, production or archived."), json_out: bool = JSON):
    """Change a model version's status."""
    mv = _registry(ctx).set_status(ref, status)
    emit({"ref": mv.ref, "status": mv.status, "status_changed_at": mv.status_changed_at}, json_out, lambda d: console().print(f"{d['ref']}: {d['status']}"))
