"""`llmfti monitor NAME [--since TIME] [--until TIME] [--baseline eval:SUITE | td:NAME:N | window:T1..T2]
[--report PATH.html] [--json]`: drift, retrieval quality and latency of a deployment from its inference
log, per deployment version, in numbers (--json) and a self-contained HTML report. Exit 0 when no
alert threshold is crossed, 1 when one is (for cron or CI).

    llmfti monitor python-docs --since 24h --baseline eval:python-reference --report build/monitor.html
    llmfti monitor python-docs --since 7d --baseline window:14d..7d --thresholds monitor.yaml --json
"""

from __future__ import annotations

from typing import List, Optional

import typer

from llmfti.cli.output import console, emit, esc, home_of, table


def monitor(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    since: Optional[str] = typer.Option(None, "--since", help="Window start: ISO-8601 time or a duration ago (90m, 24h, 7d). Default: the whole log."),
    until: Optional[str] = typer.Option(None, "--until", help="Window end (exclusive), same forms. Default: now."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Drift baseline: eval:SUITE, td:NAME:N or window:T1..T2 (e.g. window:14d..7d)."),
    report: Optional[str] = typer.Option(None, "--report", help="Write the HTML report here."),
    thresholds: Optional[str] = typer.Option(None, "--thresholds", help="YAML file of alert thresholds (llmfti.monitoring.alerts.AlertThresholds)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override one threshold: KEY=VALUE (repeatable), e.g. --set max_error_rate=0.1."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Drift alert when the MMD permutation p-value is below this (default 0.05)."),
    max_auc: Optional[float] = typer.Option(None, "--max-auc", help="Drift alert when the domain classifier AUC exceeds this (default 0.75)."),
    max_error_rate: Optional[float] = typer.Option(None, "--max-error-rate", help="Alert above this share of failed requests (default 0.05)."),
    commits: Optional[str] = typer.Option(None, "--commits", help="Feature-group change between C1..C2 (default: oldest commit served .. latest)."),
    sample: int = typer.Option(2000, "--sample", min=10, help="At most this many requests (and baseline vectors) per window for drift, topics, grounding."),
    seed: int = typer.Option(0, "--seed", help="Seed of the samples and permutations (the report is reproducible)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Monitor a deployment from its inference log (exit 1 when an alert threshold is crossed)."""
    from llmfti.monitoring.alerts import load_thresholds
    from llmfti.pipelines.monitoring import monitor as run_monitor

    overrides = list(set_ or [])
    for key, value in (("alpha", alpha), ("max_auc", max_auc), ("max_error_rate", max_error_rate)):
        if value is not None:
            overrides.append(f"{key}={value}")
    limits = load_thresholds(thresholds, overrides)
    err = console(stderr=True)
    err.print(f"monitoring {esc(name)} ...", highlight=False)
    run = run_monitor(home_of(ctx), name, since=since, until=until, baseline=baseline, thresholds=limits, commits=commits, sample=sample, seed=seed)
    result = run.result
    if report:
        result["report"] = str(run.write_report(report))
    emit(result, json_out, _render)
    if result["alerts"]:
        raise typer.Exit(1)


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def _render(d: dict) -> None:
    out = console()
    out.print(f"{esc(d['deployment'])} (active version {d['active_version']}), {d['requests']} requests, "
              f"{esc(d['window']['since'] or 'start')} .. {esc(d['window']['until'])}")
    t = table("version", "requests", "error rate", "p95 total ms", "weak/no context", "top-1 p50")
    versions = [(v, s) for v, s in d["versions"].items() if v != "all"]
    for v, s in (list(d["versions"].items()) if len(versions) > 1 else versions or list(d["versions"].items())):
        r = s["retrieval"]
        t.add_row(v, s["requests"], _pct(s["error_rate"]), (s["latency_ms"].get("total") or {}).get("p95", "-"),
                  _pct(r.get("weak_or_none_share")), ((r.get("top1") or {}).get("p50", "-")))
    out.print(t)
    g = d["grounding"]
    out.print(f"grounding: {_pct(g.get('ungrounded_share'))} of {g['answers']} sampled answers not grounded")
    dr = d["drift"]
    if dr.get("computed"):
        out.print(f"drift vs {esc(dr['baseline'])}: MMD p = {dr['mmd']['p_value']:.4f}, classifier AUC = {dr['classifier']['auc']:.3f}, "
                  f"mean length {dr['length']['baseline_mean']:.1f} -> {dr['length']['current_mean']:.1f} words")
    else:
        out.print(f"drift: not computed ({esc(dr.get('reason', ''))})")
    for topic in d.get("topics", [])[:3]:
        out.print(f"topic #{topic['topic']} ({topic['size']} queries, {_pct(topic['bad_share'])} failed or weak): {esc(topic['examples'][0] if topic['examples'] else '')}")
    for a in d["alerts"]:
        out.print(f"[bold red]ALERT[/] {esc(a['name'])} ({esc(a['scope'])}): {esc(a['message'])}")
    if not d["alerts"]:
        out.print("[bold green]no alert[/]")
    if d.get("report"):
        out.print(f"report: {esc(d['report'])}")
