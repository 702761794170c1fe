"""`llmfti batch-infer NAME --input questions.jsonl --output answers.jsonl [--engine local|ray]`: run a
deployment over a file of requests (one typed request per line, what a client would POST) through
the online pipeline; one output line per input line, every prediction logged (origin "batch").

    llmfti batch-infer python-docs --input questions.jsonl --output build/answers.jsonl --json
    llmfti batch-infer python-docs:3 --input questions.jsonl --output answers.jsonl --engine ray --ray-address auto

With vLLM installed and CUDA present, an in-process deployment runs on vLLM's offline engine with
its LoRA adapter (`--generator auto`, the default); `--generator deployment` keeps the deployment's
own backend. Exit 0 when the file was processed (failed requests are output lines with their error,
and counted), 1 with --fail-on-error when any request failed.
"""

from __future__ import annotations

from typing import Optional

import typer

from llmfti.cli.output import console, emit, home_of


def batch_infer(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment NAME (its active version) or NAME:VERSION."),
    input_path: str = typer.Option(..., "--input", "-i", help="JSONL file: one request object per line."),
    output_path: str = typer.Option(..., "--output", "-o", help="JSONL file to write, one answer per input line (replaced atomically)."),
    engine: str = typer.Option("local", "--engine", help="local (threads in this process) or ray (actors on a Ray cluster)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="--engine ray: the cluster to join ('auto', 'ray://HOST:10001'); default: a local Ray."),
    generator: str = typer.Option("auto", "--generator", help="auto (vLLM's offline engine when installed with CUDA), deployment (its own backend) or vllm."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1, help="Requests in flight per process (default: the backend's batch size; 64 on vLLM)."),
    fail_on_error: bool = typer.Option(False, "--fail-on-error", help="Exit 1 when any request failed or any line was unreadable."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout (progress goes to stderr)."),
):
    """Run a deployment over a file of requests; answers to a file, predictions to the inference log."""
    from llmfti.errors import ConfigError
    from llmfti.pipelines.batch_inference import batch_infer as run

    if ray_address and engine != "ray":
        raise ConfigError("--ray-address needs --engine ray")
    summary = run(name, input_path, output_path, home=home_of(ctx), engine=engine, generator=generator, concurrency=concurrency,
                  ray_address=ray_address, progress=True)
    emit(summary.to_dict(), json_out, _render)
    if fail_on_error and (summary.failed or summary.unreadable):
        raise typer.Exit(1)


def _render(s: dict) -> None:
    out = console()
    out.print(f"[bold]{s['deployment']}:{s['version']}[/] on {s['engine']} ({s['generator']}): {s['requests']} request(s), "
              f"{s['ok']} ok, {s['failed']} failed, {s['unreadable']} unreadable in {s['duration_s']:.2f}s "
              f"({s['requests_per_s']:.2f} req/s) -> {s['output']}")
    for kind, n in sorted(s["errors"].items()):
        out.print(f"  [yellow]{kind}[/]: {n}")
