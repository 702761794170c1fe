"""`llmfti deploy`, `llmfti rollback`, `llmfti deployments list|show|history`."""

from __future__ import annotations

from typing import Optional

import typer

from llmfti.cli.output import console, emit, home_of, table

JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")
deployments_app = typer.Typer(help="Inspect deployments: list, show, history.", no_args_is_help=True)


def _store(ctx):
    from llmfti.registry.deployments import DeploymentStore

    return DeploymentStore(home_of(ctx))


def deploy(
    ctx: typer.Context,
    config: str = typer.Argument(..., help="configs/deployments/NAME.yaml"),
    stage: bool = typer.Option(False, "--stage", help="Record the version as staged (not active) so `llmfti eval --staged` can run it."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Also require a passing eval of this suite (besides the config's gate_suites)."),
    force: bool = typer.Option(False, "--force", help="Promote without a passing eval (needs --reason)."),
    reason: str = typer.Option("", "--reason", help="Why: recorded with the deployment version."),
    json_out: bool = JSON,
):
    """Check that the model version and feature group work together, then record and activate a new
    deployment version, only if every gate suite of the config has a passing eval of the identical tuple
    (model, feature group, resolved commit, template, retrieval and generation settings) and, when another
    version serves, that eval found the new tuple not significantly worse (champion/challenger): stage
    and eval it first, or --force --reason. A running server picks it up without restart."""
    from llmfti.config import load_config
    from llmfti.config.deployments import DeploymentConfig
    from llmfti.pipelines.deployment import promote

    cfg = load_config(DeploymentConfig, config)
    suite_name = suite_version = None
    if suite:
        from llmfti.evaluation.suites import load_suite

        loaded = load_suite(suite)
        suite_name, suite_version = loaded.name, loaded.version
    record = promote(_store(ctx), cfg, force=force, reason=reason, stage=stage, suite=suite_name, suite_version=suite_version)
    verb = "staged" if stage else ("deployed (FORCED, no passing eval)" if record["forced"] else "deployed")
    emit(_summary(record) | {"staged": stage}, json_out, lambda d: console().print(
        f"{verb} [bold]{d['name']}:{d['version']}[/] model={d['model']} feature_group={d['feature_group']} commit={d['commit']}"
        + (f" (eval: {d['checks']['eval']['suite']}@{d['checks']['eval']['suite_version']})" if d["checks"].get("eval") else "")))


def rollback(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    to: Optional[int] = typer.Option(None, "--to", help="Version to restore (default: the one before the active one)."),
    reason: str = typer.Option("", "--reason", help="Recorded with the rollback."),
    json_out: bool = JSON,
):
    """Atomically restore a previous tuple (model + feature group + commit + template)."""
    record = _store(ctx).rollback(name, to, reason)
    emit(_summary(record), json_out, lambda d: console().print(f"rolled back [bold]{d['name']}[/] to version {d['version']} (model={d['model']}, commit={d['commit']})"))


def _summary(record: dict) -> dict:
    return {k: record[k] for k in ("name", "version", "model", "feature_group", "commit", "forced", "reason", "checks", "created_at")}


@deployments_app.command("list")
def list_(ctx: typer.Context, json_out: bool = JSON):
    """Active deployments."""
    rows = [_summary(r) for r in _store(ctx).list_active()]

    def render(d):
        t = table("deployment", "version", "model", "feature group", "commit")
        for r in d["deployments"]:
            t.add_row(r["name"], str(r["version"]), r["model"], r["feature_group"] or "-", str(r["commit"]))
        console().print(t)

    emit({"deployments": rows}, json_out, render)


@deployments_app.command()
def show(ctx: typer.Context, name: str = typer.Argument(...), version: Optional[int] = typer.Option(None, "--version"), json_out: bool = JSON):
    """One deployment version's full config and checks (the active one by default)."""
    store = _store(ctx)
    record = store.get(name, version) if version else store.active(name)
    emit(record.model_dump(mode="json"), json_out, None)


@deployments_app.command()
def history(ctx: typer.Context, name: str = typer.Argument(...), json_out: bool = JSON):
    """Deploy and rollback events, oldest first."""
    rows = _store(ctx).history(name)

    def render(d):
        t = table("at", "action", "version", "model", "feature group", "commit", "reason")
        for r in d["history"]:
            t.add_row(str(r["at"]), r["action"], str(r["version"]), r["model"], r["feature_group"] or "-", str(r["commit"]), r["reason"])
        console().print(t)

    emit({"name": name, "history": rows}, json_out, render)
