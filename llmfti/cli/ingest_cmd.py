"""Ingest documents into a versioned feature group: clean, chunk, embed, one atomic commit.

Unchanged documents are skipped, changed ones replaced; documents missing from the sources are
deleted only with --sync. Bad files and records are quarantined with a reason and never stop the
good ones. Without --config, an existing version keeps the settings it was created with.

--watch keeps running on a folder: a catch-up scan, then one commit per batch of changes (deletes
included); Ctrl-C stops after the batch in progress. A kafka://HOST:PORT/TOPIC source (or --stream
over JSONL files, for backfills) is read in micro-batches with the partition offsets stored in each
commit, so a restart resumes exactly where the last commit ended.

--engine ray chunks, embeds (an actor pool) and writes the new rows on Ray Data, a local Ray or the
cluster at --ray-address; the run still makes one commit (docs/scale-out.md).
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
    watch: bool = typer.Option(False, "--watch", help="Keep watching the folder: one commit per batch of changes, deletes included; Ctrl-C stops after the current batch."),
    debounce_ms: int = typer.Option(1000, "--debounce-ms", min=1, help="--watch: group file events over this many milliseconds."),
    settle: float = typer.Option(1.0, "--settle", min=0.0, help="--watch: seconds a file must go unmodified before it is read (skips files still being written)."),
    stream: bool = typer.Option(False, "--stream", help="Read JSONL files as a stream replay (a backfill): micro-batches, offsets stored in each commit, resumable."),
    batch_size: int = typer.Option(500, "--batch-size", min=1, help="Streams: messages per micro-batch (one commit each)."),
    max_batches: Optional[int] = typer.Option(None, "--max-batches", min=1, help="Streams: stop after this many micro-batches."),
    until_idle: bool = typer.Option(False, "--until-idle", help="Streams: stop when no message arrives within a poll (a backfill's end)."),
    source_id: Optional[str] = typer.Option(None, "--source-id", help="Streams: the name the source's offsets are stored under "
                                            "(default: its full identity, kafka:SERVERS/TOPIC or replay:RESOLVED-PATH)."),
    group_id: Optional[str] = typer.Option(None, "--group-id", help="Kafka consumer group (default: llmfti-NAME); offsets come from the feature group, never from the group."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (chunk, embed and write on Ray Data; one commit either way)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="--engine ray: the cluster to join ('auto', 'ray://HOST:10001', HOST:PORT); default: a local Ray."),
    json_out: bool = JSON,
):
    from llmfti.config import FeatureConfig, apply_overrides, load_config
    from llmfti.config.base import validate_config
    from llmfti.errors import ConfigError, QuarantineError
    from llmfti.store import FeatureStore, parse_ref

    if engine not in ("local", "ray"):
        raise ConfigError(f"--engine must be local or ray, not {engine!r}")
    if ray_address and engine != "ray":
        raise ConfigError("--ray-address needs --engine ray")
    if engine == "ray" and (watch or stream or any(p.startswith("kafka://") for p in paths)):
        raise ConfigError("--engine ray runs one-off ingests; --watch and streams commit small batches on the local engine")

    name, ref_version = parse_ref(feature_group)
    store = FeatureStore(home_of(ctx))
    fg = store.feature_group(name, version or ref_version, must_exist=False)
    cfg = None
    overrides = list(set_) + ([f"kind={kind}"] if kind else [])
    if config or overrides:
        # An existing version's stored config is the base for overrides; every path is validated.
        base = fg.config.model_dump() if fg.info and not config else None
        cfg = load_config(FeatureConfig, config, overrides) if base is None else validate_config(FeatureConfig, apply_overrides(base, overrides))
    kafka = [p for p in paths if p.startswith("kafka://")]
    if kafka or stream:
        _run_stream(fg, paths, cfg, stream_options(kafka, batch_size, max_batches, until_idle, group_id or f"llmfti-{name}", source_id), json_out)
        return
    if watch:
        _run_watch(fg, paths, cfg, debounce_ms, settle, json_out)
        return
    from llmfti.pipelines.feature import ingest as run_feature_pipeline

    summary = run_feature_pipeline(fg, paths, config=cfg, sync=sync, progress=True, engine=engine, ray_address=ray_address)
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


def stream_options(kafka: list[str], batch_size: int, max_batches, until_idle: bool, group_id: str, source_id: str | None = None) -> dict:
    return {"kafka": kafka, "batch_size": batch_size, "max_batches": max_batches, "until_idle": until_idle, "group_id": group_id,
            "source_id": source_id}


def _batch_line(s) -> None:
    d = s.documents
    state = f"commit {s.data_commit}" if s.committed else "no change"
    console(stderr=True).print(f"{esc(s.feature_group)}: {state}: {d['added']} added, {d['updated']} updated, {d['deleted']} deleted, "
                               f"{d['unchanged']} unchanged, {d['quarantined']} quarantined ({s.duration_s:.2f}s)")


def _run_watch(fg, paths: list[str], cfg, debounce_ms: int, settle: float, json_out: bool) -> None:
    import threading

    from llmfti.errors import ConfigError
    from llmfti.pipelines.watch import install_stop_on_sigint, watch

    if len(paths) != 1:
        raise ConfigError("--watch takes exactly one folder")
    stop = threading.Event()
    restore = install_stop_on_sigint(stop)
    batches = []
    console(stderr=True).print(f"watching {esc(paths[0])} into {esc(fg.key)} (Ctrl-C stops after the current batch)")
    try:
        commits = watch(fg, paths[0], config=cfg, stop_event=stop, debounce_ms=debounce_ms, settle_s=settle, progress=True,
                        on_batch=lambda s: (batches.append(s.to_dict()), _batch_line(s)))
    finally:
        restore()
    emit({"feature_group": fg.key, "watched": paths[0], "commits": commits, "batches": batches, "interrupted": stop.is_set()}, json_out,
         lambda d: console().print(f"{d['feature_group']}: {d['commits']} commit(s) in {len(d['batches'])} batch(es)"))
    if stop.is_set():
        raise typer.Exit(130)


def _run_stream(fg, paths: list[str], cfg, opts: dict, json_out: bool) -> None:
    import threading

    from llmfti.errors import ConfigError
    from llmfti.pipelines.stream import parse_kafka_uri, stream_ingest
    from llmfti.pipelines.watch import install_stop_on_sigint
    from llmfti.sources.stream import JsonlReplay, KafkaSource

    if len(paths) != 1:
        raise ConfigError("a stream ingest takes exactly one source (kafka://HOST:PORT/TOPIC, or one JSONL file with --stream)")
    if opts["kafka"]:
        servers, topic = parse_kafka_uri(paths[0])
        source = KafkaSource(servers, topic, group_id=opts["group_id"], source_id=opts.get("source_id"))
    else:
        source = JsonlReplay(paths[0], source_id=opts.get("source_id"))
    stop = threading.Event()
    restore = install_stop_on_sigint(stop)
    try:
        run = stream_ingest(fg, source, config=cfg, batch_size=opts["batch_size"], max_batches=opts["max_batches"],
                            until_idle=opts["until_idle"], stop_event=stop, on_batch=_batch_line, progress=True)
    finally:
        restore()
    emit({"feature_group": fg.key, **run.to_dict(), "interrupted": stop.is_set()}, json_out,
         lambda d: console().print(f"{d['feature_group']}: {d['source']}: {d['messages']} message(s) in {d['batches']} batch(es), "
                                   f"{d['commits']} commit(s); next offsets {d['positions']}"))
    if stop.is_set():
        raise typer.Exit(130)
