"""`llmfti records`: instruction data. `synthesize` writes records (question / answer / context_ids)
from a documents feature group at a pinned commit; `score` adds score columns (registered scorers) to
a records group; `preferences` writes preference pairs (reference answer vs a deployment's answer).

    llmfti records synthesize python-reference --into python-qa --exclude-suite python-reference
    llmfti records synthesize docs --into docs-qa --method teacher \\
        --teacher-url http://127.0.0.1:8001/v1 --teacher-model Qwen2.5-72B-Instruct --concurrency 8
    llmfti records score python-qa --scorer length --scorer grounding --scorer eval_question --suite python-reference
    llmfti records preferences --into python-prefs --from-records python-qa --deployment python-docs
"""

from __future__ import annotations

from typing import List, Optional

import typer

from llmfti.cli.output import console, emit, esc, home_of

app = typer.Typer(help="Instruction records: synthesize them from documents, score them, build preference pairs.", no_args_is_help=True)


@app.command()
def synthesize(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="Documents feature group DOCS[:VERSION]."),
    into: str = typer.Option(..., "--into", help="Records feature group NAME to write (created on first use)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Read the documents at this commit, tag or time (default: latest, pinned)."),
    method: str = typer.Option("detail", "--method", help="detail (questions about one sentence of a chunk), structure (headings, "
                               "definitions, API entries; both offline and deterministic) or teacher (an OpenAI-compatible model)."),
    no_cite: bool = typer.Option(False, "--no-cite", help="Answers without their trailing [n] citation."),
    replace: bool = typer.Option(False, "--replace", help="The group then holds only this run's records (earlier runs' records are "
                                 "deleted in the new commit; older commits keep them). Default: add this run's records to the group."),
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
                  max_records=max_records, pairs_per_chunk=pairs_per_chunk, seed=seed, teacher=teacher, progress=not json_out,
                  replace=replace, cite=not no_cite)
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


@app.command()
def score(
    ctx: typer.Context,
    records: str = typer.Argument(..., help="Records feature group FG[:VERSION]."),
    scorer: List[str] = typer.Option([], "--scorer", help="A registered scorer (length, language, near_duplicate, grounding, eval_question, judge); repeatable."),
    suite: List[str] = typer.Option([], "--suite", help="eval_question: eval suite whose questions are compared (repeatable)."),
    contexts: Optional[str] = typer.Option(None, "--contexts", help="grounding/judge: documents feature group the records' context_ids name (default: the synthesis lineage's)."),
    judge_url: Optional[str] = typer.Option(None, "--judge-url", help="judge: OpenAI-compatible base URL ending in /v1."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="judge: served model name."),
    judge_key_env: str = typer.Option("LLMFTI_JUDGE_API_KEY", "--judge-key-env", help="judge: environment variable with the API key."),
    param: List[str] = typer.Option([], "--param", help="Any scorer's parameter as SCORER.KEY=VALUE (YAML value); repeatable."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Score every record into columns score_<scorer> (one commit); later ingests score new records the same way."""
    from llmfti.config.base import apply_overrides
    from llmfti.errors import ConfigError
    from llmfti.pipelines.records import score as run
    from llmfti.store import FeatureStore

    specs = {name: {} for name in scorer}
    if "eval_question" in specs and suite:
        specs["eval_question"]["suites"] = list(suite)
    if "judge" in specs:
        specs["judge"].update({k: v for k, v in {"base_url": judge_url, "model": judge_model, "api_key_env": judge_key_env}.items() if v})
    for name, params in apply_overrides({}, param).items():
        if name not in specs or not isinstance(params, dict):
            raise ConfigError(f"--param {name}...: give SCORER.KEY=VALUE for a scorer named with --scorer")
        specs[name].update(params)
    summary = run(FeatureStore(home_of(ctx)), records, [{"name": n, "params": p} for n, p in specs.items()], contexts=contexts)
    emit(summary, json_out, _render_score)


def _render_score(s: dict) -> None:
    out = console()
    sc = s["scoring"]
    state = f"commit [bold]{s['commit']}[/]" if s["committed"] else "[dim]no changes, no commit[/]"
    out.print(f"[bold]{esc(s['feature_group'])}[/]: {sc['records']} records scored: {state}")
    for col, d in sc["columns"].items():
        extra = f" {esc(d['params'])}" if d["params"] else ""
        out.print(f"  {col}: {d['scorer']} v{d['version']}{extra}")
    for name, f in sc.get("flags", {}).items():
        out.print(f"  flagged by {name} (>= {f['threshold']}): {f['count']} records {esc(', '.join(f['records']))}")


@app.command()
def preferences(
    ctx: typer.Context,
    into: str = typer.Option(..., "--into", help="Preferences feature group NAME to write (created on first use)."),
    deployment: str = typer.Option(..., "--deployment", help="Deployment whose answers become the rejected side."),
    from_records: Optional[str] = typer.Option(None, "--from-records", help="Records feature group whose answers are the chosen side."),
    from_eval: Optional[str] = typer.Option(None, "--from-eval", help="Eval suite whose references are the chosen side (never a suite that gates the result)."),
    where: Optional[str] = typer.Option(None, "--where", help="--from-records: LanceDB SQL filter on the records, e.g. \"score_grounding >= 0.5\"."),
    versus: Optional[str] = typer.Option(None, "--versus", help="Another deployment: both answer, a judge ranks the two answers (chosen = preferred)."),
    versus_staged: bool = typer.Option(False, "--versus-staged", help="--versus: ask that deployment's staged version (e.g. the same deployment's challenger)."),
    judge_url: Optional[str] = typer.Option(None, "--judge-url", help="--versus: OpenAI-compatible base URL of the judge, ending in /v1."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="--versus: the judge's served model name."),
    judge_key_env: str = typer.Option("LLMFTI_JUDGE_API_KEY", "--judge-key-env", help="--versus: environment variable with the judge's API key."),
    staged: bool = typer.Option(False, "--staged", help="Ask the deployment's staged version instead of the active one."),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", min=1, help="Ask at most N questions (a seeded sample)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample."),
    exclude_suite: List[str] = typer.Option([], "--exclude-suite", help="Drop questions of this eval suite (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout (progress goes to stderr)."),
):
    """Preference pairs: the reference answer (chosen) against the deployment's own answer (rejected), or
    with --versus the judge's preferred answer of two deployments against the other."""
    from llmfti.pipelines.preferences import build_pairs
    from llmfti.store import FeatureStore

    judge = None
    if versus and judge_url and judge_model:
        from llmfti.models.teacher import TeacherClient

        judge = TeacherClient(judge_url, judge_model, api_key_env=judge_key_env, temperature=0.0, max_tokens=4)

    summary = build_pairs(FeatureStore(home_of(ctx)), into, deployment=deployment, records=from_records, suite=from_eval, staged=staged,
                          max_pairs=max_pairs, seed=seed, exclude_suites=exclude_suite, where=where, versus=versus,
                          versus_staged=versus_staged, judge=judge, progress=not json_out)
    emit(summary.to_dict(), json_out, _render_preferences)


def _render_preferences(s: dict) -> None:
    out = console()
    lin, dep = s["lineage"], s["lineage"]["deployment"]
    state = f"commit [bold]{s['commit']}[/]" if s["committed"] else "[dim]no changes, no commit[/]"
    if lin.get("versus"):
        vs = lin["versus"]
        out.print(f"[bold]{esc(s['feature_group'])}[/]: {lin['pairs']} pairs ({esc(dep['model'])} vs {esc(vs['model'])}, ranked by "
                  f"{esc(lin['judge']['model'])}): {state}")
        out.print(f"  {lin['questions']} questions; {lin['skipped_same_answer']} answered alike, {lin['skipped_undecided']} undecided, {lin['failed']} failed")
        return
    out.print(f"[bold]{esc(s['feature_group'])}[/]: {lin['pairs']} pairs (reference vs {esc(dep['name'])} v{dep['version']}, "
              f"model {esc(dep['model'])}): {state}")
    out.print(f"  {lin['questions']} questions; {lin['skipped_same_answer']} answered with the reference itself, {lin['failed']} failed")
