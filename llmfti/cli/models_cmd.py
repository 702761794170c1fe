"""`llmfti models`: base models and model versions."""

from __future__ import annotations

import typer

from llmfti.cli.output import console, emit, home_of

app = typer.Typer(help="Models: pull the embedded defaults, import base models, inspect versions.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")


@app.command("pull-defaults")
def pull_defaults(ctx: typer.Context, json_out: bool = JSON):
    """Make the embedded default embedder (all-MiniLM-L6-v2) and generator (SmolLM2-135M-Instruct,
    imported once from GGUF into safetensors) available in the project home. Idempotent, offline."""
    from llmfti.home import ProjectHome
    from llmfti.models.pull import pull_defaults as pull

    err = console(stderr=True)
    with err.status("preparing embedded default models (the first GGUF import takes ~30 s)..."):
        models = pull(ProjectHome.at(home_of(ctx)))
    emit({"models": models}, json_out, lambda d: [console().print(f"{m['name']}: {m['status']} ({m['path']})") for m in d["models"]])
