"""`llmfti fg`: read feature groups: list, show, history, tag, search (with time travel), quarantine; and maintain them."""

from __future__ import annotations

from typing import List, Optional

import typer

from llmfti.cli.output import console, emit, esc, home_of, table

app = typer.Typer(help="Read feature groups: list, show, history, tag, search, quarantine; maintain (compact, index, prune).", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")
REF = typer.Argument(..., help="NAME or NAME:VERSION (latest version by default).")


def _store(ctx):
    from llmfti.store import FeatureStore

    return FeatureStore(home_of(ctx))


@app.command("list")
def list_(ctx: typer.Context, json_out: bool = JSON):
    """List feature groups and their versions."""
    store = _store(ctx)
    groups = []
    for info in store.list_groups():
        fg = store.feature_group(info["name"], info["version"])
        groups.append(
            {
                "name": info["name"], "version": info["version"], "kind": info["kind"], "embedder": info["embedder_id"],
                "rows": fg.table().count_rows() if fg.has_data() else 0,
                "latest_commit": fg.table().version if fg.has_data() else None, "description": info["description"],
            }
        )

    def render(d):
        rows = d["feature_groups"]
        t = table("feature group", "kind", "embedder", "rows", "latest commit", "description")
        for g in rows:
            t.add_row(f"{g['name']}:{g['version']}", g["kind"], g["embedder"], str(g["rows"]), str(g["latest_commit"]), g["description"])
        console().print(t if rows else "no feature groups yet: llmfti ingest PATH --feature-group NAME")

    emit({"feature_groups": groups}, json_out, render)


@app.command()
def show(ctx: typer.Context, ref: str = REF, json_out: bool = JSON):
    """Schema, embedder, chunker, row count, latest commit, tags and indices of a version."""
    data = _store(ctx).feature_group(ref).describe()

    def render(d):
        out = console()
        out.print(f"[bold]{d['name']}:{d['version']}[/] ({d['kind']}) {esc(d['description'])}")
        e = d["embedder"]
        out.print(f"  embedder: {e['id']} dim={e['dimension']} dtype={e['dtype']} fingerprint={e['fingerprint'][:16]}")
        c = d["chunker"]
        out.print(f"  chunker: {c['name']} chunk_tokens={c['chunk_tokens']} overlap={c['overlap']} fingerprint={c['fingerprint'][:16]}")
        out.print(f"  rows: {d['rows']}  latest commit: {d['latest_commit']}  tags: {d['tags'] or '-'}  created: {d['created_at']}")
        out.print(f"  indices: {', '.join(i['type'] + ' on ' + ','.join(i['columns']) for i in d['indices']) or '-'}")
        if d.get("lineage"):
            lin = d["lineage"]
            src = lin.get("documents") or {}
            out.print(f"  lineage: {esc(lin.get('pipeline', '?'))} ({esc(lin.get('method', '?'))}, seed {lin.get('seed')}) from "
                      f"{esc(src.get('feature_group', '?'))} @ commit {src.get('commit')}; excluded suites: {esc(', '.join((lin.get('excluded') or {}).get('suites') or []) or '-')}")
        if d["schema"]:
            out.print("  schema: " + ", ".join(f"{k}: {v}" for k, v in d["schema"].items()))

    emit(data, json_out, render)


@app.command()
def history(ctx: typer.Context, ref: str = REF, json_out: bool = JSON):
    """Commits with their ingestion time, row count, tags and the run that made them."""
    fg = _store(ctx).feature_group(ref)
    rows = fg.history() if fg.has_data() else []

    def render(d):
        items = d["commits"]
        t = table("commit", "ingested_at", "rows", "change", "tags", "run", "stored")
        for h in items:
            stored = "yes" if h.get("available", True) else f"pruned {str(h['pruned_at'])[:19]}"
            t.add_row(str(h["commit"]), h["ingested_at"], str(h["rows"]), h["change"], ",".join(h["tags"]), h["run_id"] or "", stored)
        console().print(t)

    emit({"feature_group": fg.key, "commits": rows}, json_out, render)


@app.command()
def tag(ctx: typer.Context, ref: str = REF, commit: str = typer.Argument(..., help="Commit number, existing tag or ISO time."), name: str = typer.Argument(..., help="New tag name."), json_out: bool = JSON):
    """Give a commit a name, e.g. `llmfti fg tag docs:1 7 release-2026-11`. Tags are immutable."""
    fg = _store(ctx).feature_group(ref)
    resolved = fg.tag(commit, name)
    emit({"feature_group": fg.key, "tag": name, "commit": resolved}, json_out, lambda d: console().print(f"tagged {d['feature_group']} commit {d['commit']} as {d['tag']}"))


@app.command()
def search(
    ctx: typer.Context,
    ref: str = REF,
    query: str = typer.Argument(..., help="Natural-language query."),
    k: int = typer.Option(5, "-k", min=1, max=1000, help="Number of results."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Commit number, tag, or ISO-8601 ingestion time."),
    hybrid: bool = typer.Option(False, "--hybrid", help="Vector search re-ordered by full-text matches (good when questions quote identifiers or exact terms)."),
    where: Optional[str] = typer.Option(None, "--where", help="SQL filter on columns, e.g. \"doc_id = 'a.md'\"."),
    json_out: bool = JSON,
):
    """Search a feature group, optionally as it was at a commit, tag or time."""
    fg = _store(ctx).feature_group(ref)
    data = fg.search(query, k=k, as_of=as_of, hybrid=hybrid, where=where)

    def render(d):
        out = console()
        out.print(f"[bold]{esc(d['feature_group'])}[/] @ commit {d['commit']}: {len(d['results'])} result(s) for {esc(repr(d['query']))}")
        for i, r in enumerate(d["results"], 1):
            head = f" [{r['heading_path']}]" if r["heading_path"] else ""
            out.print(f"\n[bold]{i}.[/] score {r['score']:.3f}  {esc(r['source'] + head)}  [dim]{r['chunk_id'][:12]}[/]")
            text = r["text"] if len(r["text"]) <= 400 else r["text"][:400] + " ..."
            out.print(text, markup=False)

    emit(data, json_out, render)


@app.command()
def quarantine(ctx: typer.Context, ref: str = REF, run: Optional[str] = typer.Option(None, "--run", help="Only this run id."), json_out: bool = JSON):
    """Inputs that were quarantined, with source, reason and run id."""
    fg = _store(ctx).feature_group(ref)
    rows = fg.store.quarantine(fg.key, run)

    def render(d):
        items = d["items"]
        t = table("run", "source", "reason", "detail")
        for q in items:
            t.add_row(q["run_id"], q["source"], q["reason"], q["detail"])
        console().print(t)

    emit({"feature_group": fg.key, "items": rows}, json_out, render)


@app.command()
def maintain(
    ctx: typer.Context,
    refs: Optional[List[str]] = typer.Argument(None, help="NAME or NAME:VERSION (default: every feature group, and the system tables)."),
    keep_within: str = typer.Option("7d", "--keep-within", help="Keep every version superseded less than this long ago (30m, 24h, 7d, 2w)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would be pruned; write nothing."),
    no_compact: bool = typer.Option(False, "--no-compact", help="Skip compaction (index and prune only)."),
    system: Optional[bool] = typer.Option(None, "--system/--no-system", help="Also maintain the system tables (default: when no REFS are given)."),
    json_out: bool = JSON,
):
    """Compact small fragments, add new rows to the indices, and prune old versions. Never prunes a
    commit that is tagged, pinned by a deployment (active or a rollback target), a training dataset or an
    eval record, or superseded less than --keep-within ago; `fg history` lists what was pruned."""
    from llmfti.pipelines.maintenance import maintain as run_maintenance

    err = console(stderr=True)
    with err.status("maintaining...") as status:
        reports = run_maintenance(home_of(ctx), list(refs or []), keep_within=keep_within, dry_run=dry_run, do_compact=not no_compact,
                                  system_tables=system, progress=lambda label: status.update(f"maintaining {label}..."))
    data = {"dry_run": dry_run, "keep_within": keep_within, "tables": [r.to_dict() for r in reports]}

    def render(d):
        t = table("table", "versions", "fragments", "compacted", "indexed", "pruned", "kept (why)", "freed")
        for r in d["tables"]:
            kept = "; ".join(f"{len(v)} {k}" for k, v in sorted(r["kept"].items()))
            pruned = ",".join(str(p["commit"]) for p in r["pruned"][:8]) + (f" (+{len(r['pruned']) - 8})" if len(r["pruned"]) > 8 else "")
            t.add_row(esc(r["subject"]), f"{r['versions_before']} -> {r['versions_after']}", f"{r['fragments_before']} -> {r['fragments_after']}",
                      "yes" if r["compaction"] else "-", ",".join(r["indexed"]) or "-", pruned or "-", esc(kept), f"{r['bytes_removed'] / 1e6:.1f} MB")
        console().print(t)
        if d["dry_run"]:
            console().print("[dim]dry run: nothing was written[/]")

    emit(data, json_out, render)
