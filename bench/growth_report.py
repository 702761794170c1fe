"""The report of bench/growth.py: the tables by size, the issue's targets judged at 1M, and the curves
(PNG) that show the growth at a glance."""

from __future__ import annotations

import os

import numpy as np

TARGETS = {
    "logs_limit20_ms_at_1M": 50.0,
    "flush_p50_ratio_1M_vs_10k": 1.5,
    "reingest_1pct_fraction_at_100k": 0.03,
    "search_p50_ms_at_1M": 10.0,
    "recall_at_10": 0.95,
}


def report(fgs: list[dict], logs: list[dict], judge: bool) -> None:
    print("\nfeature group, by size (synthetic 384-d vectors; search: cold queries, k=10):")
    print(f"  {'chunks':>9} {'full ingest':>12} {'1% re-ingest':>13} {'fraction':>9} {'search p50':>11} {'p95':>8} {'recall@10':>10} "
          f"{'history':>9} {'day: versions stored/created':>29} {'fragments':>10}")
    for f in fgs:
        print(f"  {f['chunks']:>9} {f['full_ingest_s']:>10.1f} s {f['reingest_1pct_s']:>11.2f} s {f['reingest_1pct_fraction']:>9.4f} "
              f"{f['search_p50_ms']:>8.2f} ms {f['search_p95_ms']:>5.1f} ms {f['recall_at_10']:>10.3f} {f['history_s'] * 1e3:>6.1f} ms "
              f"{f['day_versions_stored']:>14} / {f['day_versions_created']:<12} {f['day_fragments_stored']:>10}")
    if any("search_maintained_p50_ms" in f for f in fgs):
        print("\n  search after `fg maintain` (the 1 % re-ingest's deletions materialised, index deltas merged):")
        print(f"  {'chunks':>9} {'maintain':>10} {'search p50':>11} {'p95':>8} {'recall@10':>10}")
        for f in fgs:
            print(f"  {f['chunks']:>9} {f['maintain_after_reingest_s']:>8.1f} s {f['search_maintained_p50_ms']:>8.2f} ms "
                  f"{f['search_maintained_p95_ms']:>5.1f} ms {f['search_maintained_recall_at_10']:>10.3f}")
    print("\ninference log, by size:")
    print(f"  {'rows':>9} {'logs --limit 20 p50':>20} {'(old path)':>11} {'after traffic':>14} {'flush p50':>10} {'p95':>8} "
          f"{'versions stored/created':>24} {'fragments':>10}")
    for g in logs:
        old = f"{g['logs_limit20_old_path_ms']:.0f} ms" if "logs_limit20_old_path_ms" in g else "-"
        print(f"  {g['log_rows']:>9} {g['logs_limit20_p50_ms']:>17.2f} ms {old:>11} {g['logs_limit20_after_traffic_p50_ms']:>11.2f} ms "
              f"{g['flush_p50_ms']:>7.2f} ms {g['flush_p95_ms']:>5.1f} ms {g['log_versions_stored']:>11} / {g['log_versions_created']:<10} "
              f"{g['log_fragments_stored']:>10}")

    def at(rows, size, key):
        return next((r[key] for r in rows if r.get("chunks_target", r.get("log_rows")) == size), None)

    checks = []
    if (v := at(logs, 1_000_000, "logs_limit20_p50_ms")) is not None:
        checks.append(("logs --limit 20 at 1M rows (ms)", v, "<=", TARGETS["logs_limit20_ms_at_1M"]))
    if (a := at(logs, 1_000_000, "flush_p50_ms")) is not None and (b := at(logs, 10_000, "flush_p50_ms")):
        checks.append(("log-flush p50 at 1M / at 10k", a / b, "<=", TARGETS["flush_p50_ratio_1M_vs_10k"]))
    if (v := at(fgs, 100_000, "reingest_1pct_fraction")) is not None:
        checks.append(("re-ingest of a 1% change / full ingest at 100k chunks", v, "<=", TARGETS["reingest_1pct_fraction_at_100k"]))
    if (v := at(fgs, 1_000_000, "search_p50_ms")) is not None:
        checks.append(("search p50 at 1M chunks, right after the re-ingest (ms)", v, "<=", TARGETS["search_p50_ms_at_1M"]))
        checks.append(("recall@10 at 1M chunks (cold queries)", at(fgs, 1_000_000, "recall_at_10"), ">=", TARGETS["recall_at_10"]))
    if (v := at(fgs, 1_000_000, "search_maintained_p50_ms")) is not None:
        checks.append(("search p50 at 1M chunks, after `fg maintain` (ms)", v, "<=", TARGETS["search_p50_ms_at_1M"]))
        checks.append(("recall@10 at 1M chunks, after `fg maintain`", at(fgs, 1_000_000, "search_maintained_recall_at_10"), ">=",
                       TARGETS["recall_at_10"]))
    if fgs:
        checks.append(("feature group: versions stored after the day (max over sizes)", max(f["day_versions_stored"] for f in fgs), "<=",
                       max(f["day_versions_created"] for f in fgs)))
    print("\ntargets:")
    for label, value, op, target in checks:
        ok = value <= target if op == "<=" else value >= target
        print(f"  {label:<66} {value:10.4f}  {op} {target}: {'MET' if ok else 'MISSED'}" + ("" if judge else " (quick run: indicative)"))
    if not any(c[0].startswith(("logs --limit 20 at 1M", "search p50 at 1M")) for c in checks):
        print("  (the 1M-row targets need the full run: without --quick)")


def plot(fgs: list[dict], logs: list[dict], path: str, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(15, 8.5))
    n = [f["chunks"] for f in fgs]
    a = ax[0][0]
    a.plot(n, [f["search_p50_ms"] for f in fgs], "o-", label="search p50")
    a.plot(n, [f["search_p95_ms"] for f in fgs], "o--", label="search p95")
    kept = [(f["chunks"], f["search_maintained_p50_ms"]) for f in fgs if "search_maintained_p50_ms" in f]
    if kept:
        a.plot(*zip(*kept), "^-", color="tab:purple", label="search p50 after fg maintain")
    a.axhline(TARGETS["search_p50_ms_at_1M"], color="grey", lw=0.8, ls=":", label="target p50 at 1M")
    a.set(xscale="log", xlabel="chunks", ylabel="ms", title="search, cold queries (k=10)")
    a.set_ylim(bottom=0)
    b = a.twinx()
    b.plot(n, [f["recall_at_10"] for f in fgs], "s-", color="tab:green", label="recall@10")
    b.set(ylim=(0.8, 1.01), ylabel="recall@10 vs exact")
    a.legend(loc="lower left", fontsize=8)
    b.legend(loc="lower right", fontsize=8)
    a = ax[0][1]
    a.plot(n, [f["full_ingest_s"] for f in fgs], "o-", label="full ingest")
    a.plot(n, [f["reingest_1pct_s"] for f in fgs], "o-", label="re-ingest, 1 % changed")
    a.set(xscale="log", yscale="log", xlabel="chunks", ylabel="s", title="ingest")
    a.legend(fontsize=8)
    a = ax[0][2]
    a.plot(n, [f["history_s"] * 1e3 for f in fgs], "o-")
    a.set(xscale="log", xlabel="chunks", ylabel="ms", title="fg history")
    a.set_ylim(bottom=0)
    m = [g["log_rows"] for g in logs]
    a = ax[1][0]
    a.plot(m, [g["logs_limit20_p50_ms"] for g in logs], "o-", label="logs --limit 20 (p50)")
    old = [(g["log_rows"], g["logs_limit20_old_path_ms"]) for g in logs if "logs_limit20_old_path_ms" in g]
    if old:
        a.plot(*zip(*old), "x--", label="before: read all, sort in Python")
    a.axhline(TARGETS["logs_limit20_ms_at_1M"], color="grey", lw=0.8, ls=":", label="target at 1M")
    a.set(xscale="log", yscale="log", xlabel="log rows", ylabel="ms", title="llmfti logs --limit 20")
    a.legend(fontsize=8)
    a = ax[1][1]
    a.plot(m, [g["flush_p50_ms"] for g in logs], "o-", label="p50")
    a.plot(m, [g["flush_p95_ms"] for g in logs], "o--", label="p95")
    a.set(xscale="log", xlabel="log rows", ylabel="ms", title="log flush (5 rows)")
    a.set_ylim(bottom=0)
    a.legend(fontsize=8)
    a = ax[1][2]
    labels = [f"fg {f['chunks'] // 1000}k" for f in fgs] + [f"log {g['log_rows'] // 1000}k" for g in logs]
    created = [f["day_versions_created"] for f in fgs] + [g["log_versions_created"] for g in logs]
    stored = [f["day_versions_stored"] for f in fgs] + [g["log_versions_stored"] for g in logs]
    frags = [f["day_fragments_stored"] for f in fgs] + [g["log_fragments_stored"] for g in logs]
    x = np.arange(len(labels))
    a.bar(x - 0.27, created, 0.27, label="versions created")
    a.bar(x, stored, 0.27, label="versions stored")
    a.bar(x + 0.27, frags, 0.27, label="fragments stored")
    a.set(xticks=x, xticklabels=labels, title="after simulated traffic, maintenance on")
    a.tick_params(axis="x", labelsize=8)
    a.legend(fontsize=8)
    fig.suptitle(title or f"llmfti growth benchmark ({os.cpu_count()} cores, shared machine: load {os.getloadavg()[0]:.1f})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"plot: {path}")


def load_runs(paths: list[str]) -> tuple[list[dict], list[dict]]:
    """The figures of several `--json` runs (sizes run apart, e.g. 1M alone on quiet cores), by size; a
    size measured twice keeps its last run."""
    import json
    from pathlib import Path

    fgs: dict[int, dict] = {}
    logs: dict[int, dict] = {}
    for path in paths:
        run = json.loads(Path(path).read_text())
        fgs.update({f["chunks_target"]: f for f in run.get("feature_groups", [])})
        logs.update({g["log_rows"]: g for g in run.get("logs", [])})
    return [fgs[k] for k in sorted(fgs)], [logs[k] for k in sorted(logs)]
