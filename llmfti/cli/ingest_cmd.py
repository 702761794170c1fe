"""Ingest documents into a versioned feature group: clean, chunk, embed, one atomic commit.

Unchanged documents are skipped, changed ones replaced; documents missing from the sources are
deleted only with --sync. Bad files and records are quarantined with a reason and never stop the
good ones. Without --config, an existing version keeps the settings it was created with.
"""

from __future__ import annotations

from typing import List, Optional

import typer

from llmfti.cli.output import console, emit, esc, home_of

JSON = typer.Option(False, "--json", help="Print one JSON document on stdout (progress goes to stderr).")


def ingest(
    ctx: typer.Context,
    paths: List[str] = typer.Argument(..., help="Files, directories (recursive) or globs: .md .txt .rst .html .pdf .jsonl"),
    feature_group: str = typer.Option(..., "--feature-group", "-f", help="Feature group NAME (or NAME:VERSION)."),
    version: Optional[int] = typer.Option(None, "--version", "-v", min=1, help="Schema/logic version to write (default: latest, or 1)."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="configs/features/NAME.yaml (default: the version's stored config)."),
    set_: List[str] = typer.Option([], "--set", help="Override a config value, e.g. --set chunker.chunk_tokens=128"),
    sync: bool = typer.Option(False, "--sync", help="Delete documents that are no longer in the sources."),
    fail_on_quarantine: bool = typer.Option(False, "--fail-on-quarantine", help="Exit with code 5 when anything was quarantined."),
    kind: Optional[str] = typer.Option(None, "--kind", help="documents (chunked) or records (instruction data: question/answer)."),
    json_out: bool = JSON,
):
    from llmfti.config import FeatureConfig, apply_overrides, load_config
    from llmfti.config.base import validate_config
    from llmfti.errors import QuarantineError
    from llmfti.store import FeatureStore, parse_ref

    name, ref_version = parse_ref(feature_group)
    store = FeatureStore(home_of(ctx))
    fg = store.feature_group(name, version or ref_version, must_exist=False)
    cfg = None
    overrides = list(set_) + ([f"kind={kind}"] if kind else [])
    if config or overrides:
        # An existing version's stored config is the base for overrides; every path is validated.
        base = fg.config.model_dump() if fg.info and not config else None
        cfg = load_config(FeatureConfig, config, overrides) if base is None else validate_config(FeatureConfig, apply_overrides(base, overrides))
    from llmfti.pipelines.feature import ingest as run_feature_pipeline

    summary = run_feature_pipeline(fg, paths, config=cfg, sync=sync, progress=True)
    data = summary.to_dict()
    emit(data, json_out, _render)
    if fail_on_quarantine and summary.documents["quarantined"]:
        # The summary above is the one JSON document; the failure goes to stderr and the exit code.
        n = summary.documents["quarantined"]
        console(stderr=True).print(f"[bold red]error:[/] {n} input(s) quarantined (see llmfti fg quarantine {summary.feature_group})")
        raise typer.Exit(QuarantineError.exit_code)



def _render(s: dict) -> None:
    out = console()
    d = s["documents"]
    state = f"commit [bold]{s['commit']}[/]" if s["committed"] else "[dim]no changes, no commit[/]"
    out.print(f"[bold]{s['feature_group']}[/] run {s['run_id']}: {state} in {s['duration_s']:.2f}s")
    out.print(
        f"  documents: {d['seen']} seen, {d['added']} added, {d['updated']} updated, {d['unchanged']} unchanged, "
        f"{d['deleted']} deleted, {d['quarantined']} quarantined"
    )
    out.print(f"  chunks: {s['chunks_written']} written, {s['chunks_deleted']} replaced or deleted")
    for q in s["quarantine"][:20]:
        out.print(f"  [yellow]quarantined[/] {esc(q['source'])}: {q['reason']} ({esc(q['detail'])})")
    if len(s["quarantine"]) > 20:
        out.print(f"  ... and {len(s['quarantine']) - 20} more (llmfti fg quarantine {s['feature_group']})")
