"""The monitoring report's plots: matplotlib figures rendered to PNG and returned as base64 strings,
to be embedded in the HTML as data URIs (no files beside the report, no JavaScript, no network).

Figures are built with matplotlib's object API (Figure + the Agg canvas), never pyplot: no global
figure state, no GUI backend, safe in a server thread. Small sizes and a modest dpi keep each PNG at
a few tens of kB, so the whole report stays well under 1 MB.
"""

from __future__ import annotations

import base64
import io

import numpy as np

DPI = 80
BASELINE, CURRENT, BAD = "#7f8c8d", "#2e86de", "#e74c3c"


def _figure(width: float = 9.0, height: float = 3.2, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def volume_plot(times, errors) -> str:
    """Requests over time, successful and failed stacked."""
    fig, (ax,) = _figure()
    t = np.asarray(times, dtype="datetime64[us]")
    if len(t):
        import matplotlib.dates as mdates

        nums = mdates.date2num(t)
        bins = np.linspace(nums.min(), nums.max() + 1e-6, 31)
        err = np.asarray(errors, dtype=bool)
        ax.hist([nums[~err], nums[err]], bins=bins, stacked=True, color=[CURRENT, BAD], label=["ok", "failed"])
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.legend(loc="upper left")
    ax.set_ylabel("requests")
    ax.set_title("Requests over time")
    return _png(fig)


def latency_plot(current: dict, reference: dict | None) -> str:
    """p50 and p95 per stage (log scale), against the reference window when there is one."""
    stages = [s for s in current if s != "total"] + (["total"] if "total" in current else [])
    fig, (ax,) = _figure()
    x = np.arange(len(stages))
    series = [("p50", "p50", CURRENT, 0.6), ("p95", "p95", CURRENT, 1.0)]
    width = 0.2 if reference else 0.35
    offset = 0
    for label, key, color, alpha in series:
        ax.bar(x + offset * width, [current[s][key] for s in stages], width, color=color, alpha=alpha, label=f"{label} (window)")
        offset += 1
        if reference:
            ax.bar(x + offset * width, [(reference.get(s) or {}).get(key, 0) for s in stages], width, color=BASELINE, alpha=alpha,
                   label=f"{label} (reference)")
            offset += 1
    ax.set_xticks(x + width * (offset - 1) / 2, stages)
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.set_title("Latency per stage")
    ax.legend(fontsize=8)
    return _png(fig)


def retrieval_plot(top1, reference_top1, weak_score: float | None, grounding: list[float]) -> str:
    """Top-1 retrieval score distribution (window vs reference) and the answers' grounding scores."""
    fig, (ax, ax2) = _figure(ncols=2)
    v = np.asarray(top1, dtype=float)
    v = v[~np.isnan(v)]
    lo = min([v.min()] if len(v) else [0.0])
    bins = np.linspace(min(lo, 0.0), 1.0, 31)
    if reference_top1 is not None:
        r = np.asarray(reference_top1, dtype=float)
        r = r[~np.isnan(r)]
        if len(r):
            ax.hist(r, bins=bins, density=True, color=BASELINE, alpha=0.6, label="reference")
    if len(v):
        ax.hist(v, bins=bins, density=True, color=CURRENT, alpha=0.7, label="window")
    if weak_score is not None:
        ax.axvline(weak_score, color=BAD, linestyle="--", label="weak below")
    ax.set_title("Top-1 retrieval score")
    ax.legend(fontsize=8)
    g = np.asarray([s for s in grounding if s is not None], dtype=float)
    if len(g):
        ax2.hist(g, bins=np.linspace(0, 1, 21), color=CURRENT)
    ax2.set_title("Answer grounding (share of words in contexts)")
    return _png(fig)


def drift_plot(pca_baseline, pca_current, len_baseline, len_current) -> str:
    """Both windows on two principal components fitted on both, and query lengths."""
    fig, (ax, ax2) = _figure(ncols=2, height=3.6)
    b, c = np.asarray(pca_baseline), np.asarray(pca_current)
    if len(b):
        ax.scatter(b[:, 0], b[:, 1], s=6, color=BASELINE, alpha=0.5, label="baseline")
    if len(c):
        ax.scatter(c[:, 0], c[:, 1], s=6, color=CURRENT, alpha=0.5, label="window")
    ax.set_title("Query vectors (PCA fitted on both windows)")
    ax.legend(fontsize=8)
    lb, lc = np.asarray(len_baseline, dtype=float), np.asarray(len_current, dtype=float)
    top = max([lb.max() if len(lb) else 1, lc.max() if len(lc) else 1])
    bins = np.arange(0, top + 2) - 0.5 if top < 60 else 30
    # The baseline filled, the window as an outline on top: identical distributions stay both visible.
    if len(lb):
        ax2.hist(lb, bins=bins, density=True, color=BASELINE, alpha=0.6, label="baseline")
    if len(lc):
        ax2.hist(lc, bins=bins, density=True, color=CURRENT, histtype="step", linewidth=2, label="window")
    ax2.set_title("Query length (words)")
    ax2.legend(fontsize=8)
    return _png(fig)


def topics_plot(topics: list[dict]) -> str:
    """Share of bad requests (failed, weak or no context) per topic, worst on top."""
    fig, (ax,) = _figure(height=0.5 + 0.45 * max(1, len(topics)))
    labels = [f"#{t['topic']}: {t['examples'][0][:50] if t['examples'] else ''} ({t['size']})" for t in topics][::-1]
    ax.barh(np.arange(len(topics)), [t["bad_share"] for t in topics][::-1], color=BAD)
    ax.set_yticks(np.arange(len(topics)), labels, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share failed or with weak/no context")
    ax.set_title("Topics served worst")
    return _png(fig)
