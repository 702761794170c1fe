"""`llmfti records synthesize`: instruction data (question / answer / context_ids) from a documents
feature group at a pinned commit, into a records feature group, with lineage.

    llmfti records synthesize python-reference --into python-qa --exclude-suite python-reference
    llmfti records synthesize docs --into docs-qa --method teacher \\
        --teacher-url http://127.0.0.1:8001/v1 --teacher-model Qwen2.5-72B-Instruct --concurrency 8
"""

from __future__ import annotations

from typing import List, Optional

import typer

from llmfti.cli.output import console, emit, esc, home_of

app = typer.Typer(help="Instruction records: synthesize them from documents.", no_args_is_help=True)


@app.command()
def synthesize(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="Documents feature group DOCS[:VERSION]."),
    into: str = typer.Option(..., "--into", help="Records feature group NAME to write (created on first use)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Read the documents at this commit, tag or time (default: latest, pinned)."),
    method: str = typer.Option("structure", "--method", help="structure (offline, deterministic) or teacher (an OpenAI-compatible model)."),
    exclude_suite: List[str] = typer.Option([], "--exclude-suite", help="Eval suite whose documents and passages are never used (repeatable)."),
    max_records: Optional[int] = typer.Option(None, "--max-records", min=1, help="Keep at most N records (a seeded sample)."),
    pairs_per_chunk: int = typer.Option(2, "--pairs-per-chunk", min=1, max=20, help="Question/answer pairs per chunk at most."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample (and of the teacher's sampling)."),
    teacher_url: Optional[str] = typer.Option(None, "--teacher-url", help="teacher: OpenAI-compatible base URL ending in /v1."),
    teacher_model: Optional[str] = typer.Option(None, "--teacher-model", help="teacher: served model name."),
    teacher_key_env: str = typer.Option("LLMFTI_TEACHER_API_KEY", "--teacher-key-env", help="teacher: environment variable with the API key."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, max=256, help="teacher: requests in flight at most."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout (progress goes to stderr)."),
):
    """Synthesize question/answer records from a documents feature group; evaluation data never leaks in."""
    from llmfti.pipelines.records import TeacherSettings, synthesize as run
    from llmfti.store import FeatureStore

    teacher = TeacherSettings(teacher_url, teacher_model, teacher_key_env, concurrency) if method == "teacher" and teacher_url and teacher_model else None
    summary = run(FeatureStore(home_of(ctx)), source, into, as_of=as_of, method=method, exclude_suites=exclude_suite,
                  max_records=max_records, pairs_per_chunk=pairs_per_chunk, seed=seed, teacher=teacher, progress=not json_out)
    emit(summary.to_dict(), json_out, _render)


def _render(s: dict) -> None:
    out = console()
    lin, d = s["lineage"], s["documents"]
    state = f"commit [bold]{s['commit']}[/]" if s["committed"] else "[dim]no changes, no commit[/]"
    out.print(f"[bold]{esc(s['feature_group'])}[/]: {lin['records']} records ({lin['method']}) from {esc(lin['documents']['feature_group'])} "
              f"@ commit {lin['documents']['commit']}: {state}")
    out.print(f"  records: {d['added']} added, {d['updated']} updated, {d['unchanged']} unchanged, {d['deleted']} deleted, {d['quarantined']} failed")
    ex = lin["excluded"]
    if ex["suites"]:
        out.print(f"  excluded for {esc(', '.join(ex['suites']))}: {ex['documents']} documents, {ex['chunks']} more chunks")
