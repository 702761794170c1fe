"""`llmfti eval SUITE --deployment NAME [--staged] [--report report.html] [--json]`: run an eval suite
on a deployment's own inference pipeline (in-process), gate it, and record the result in the registry
against the exact tuple. Exit 0 when the gate passes, 1 when it fails.

    llmfti deploy configs/deployments/python-docs.yaml --stage
    llmfti eval python-reference --deployment python-docs --staged --report build/eval-report.html
    llmfti deploy configs/deployments/python-docs.yaml      # promotes: the eval above qualifies it
"""

from __future__ import annotations

from typing import Optional

import typer

from llmfti.cli.output import console, emit, esc, home_of, table


def eval_(
    ctx: typer.Context,
    suite: str = typer.Argument(..., help="Suite name (evals/NAME/) or a suite folder."),
    deployment: str = typer.Option(..., "--deployment", "-d", help="Deployment name."),
    staged: bool = typer.Option(False, "--staged", help="Evaluate the newest staged version (llmfti deploy --stage) instead of the active one."),
    version: Optional[int] = typer.Option(None, "--version", help="Evaluate this deployment version (staged or ever deployed)."),
    report: Optional[str] = typer.Option(None, "--report", help="Write an HTML report here."),
    no_record: bool = typer.Option(False, "--no-record", help="Do not store the result in the registry (it then cannot qualify a promotion)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Run an eval suite on a deployment and gate it (exit 1 below the thresholds)."""
    from llmfti.evaluation.report import write_report
    from llmfti.pipelines.evaluation import run_eval
    from llmfti.evaluation.suites import load_suite
    from llmfti.registry.deployments import DeploymentStore

    loaded = load_suite(suite)
    store = DeploymentStore(home_of(ctx))
    if version is not None:
        record = store.get(deployment, version)
    else:
        record = store.staged(deployment) if staged else store.active(deployment)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    err = console(stderr=True)
    err.print(f"eval {loaded.ref} ({len(loaded.cases)} cases) on {deployment}:{record['version']}")
    # One bar per evaluated tuple (a champion evaluated first for the comparison gets its own).
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[case]}"),
                  TimeRemainingColumn(), console=err, transient=False) as bar:
        tasks: dict = {}

        def progress(i, n, case_id):
            if i == 1 or not tasks:
                tasks["now"] = bar.add_task(f"eval {loaded.name}", total=n, case="")
            bar.update(tasks["now"], completed=i, case=esc(case_id))

        result = run_eval(store.home, loaded, record, progress=progress, store=not no_record)
    if report:
        result["report"] = str(write_report(result, report))
    summary = {k: v for k, v in result.items() if k != "cases"}
    summary["cases"] = [{"id": c["id"], "scores": c["scores"], "cited_doc_ids": c["cited_doc_ids"]} for c in result["cases"]]
    emit(summary, json_out, _render)
    if not result["passed"]:
        raise typer.Exit(1)


def _render(d: dict) -> None:
    out = console()
    t = table("metric", "value", "threshold", "status")
    for c in d["checks"]:
        value = "-" if c["value"] is None else f"{c['value']:.3f}"
        if c.get("lower") is not None:
            value += f" (CI lower {c['lower']:.3f})"
        t.add_row(c["metric"], value, f"{c['threshold']:.3f}", c["status"])
    out.print(t)
    out.print(f"worst cases: {esc(', '.join(d['worst_cases']))}")
    for stage, v in (d.get("stages") or {}).items():
        out.print(f"{stage}: " + ("pass" if v.get("passed") else f"[bold red]FAIL[/] ({', '.join(v.get('failing') or [])})"))
    if d.get("comparison"):
        c = d["comparison"]
        out.print(f"against the serving version {c['champion']['deployment_version']}: "
                  + ("not significantly worse" if c["passed"] else f"[bold red]significantly worse[/] on {', '.join(c['worse_on'])}"))
    out.print(f"{d['suite']}@{d['suite_version']} on {d['deployment']}:{d['deployment_version']} (model {d['model']}, "
              f"feature group {d['feature_group']} @ commit {d['commit']}, tuple {d['tuple_key']}) in {d['duration_s']} s: "
              + ("[bold green]PASS[/]" if d["passed"] else f"[bold red]FAIL[/] ({', '.join(d['failing'])})"))
    if d.get("report"):
        out.print(f"report: {d['report']}")
