"""The report of bench/finetune.py: one JSON line per side, the markdown table with ratios against
the naive loop and TRL, and the like-with-like checks (plus the issue's targets on CUDA)."""

from __future__ import annotations

import json


def emit(rec, out, log):
    line = json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items()})
    if log:
        log(line)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def table(results):
    """Markdown table with ratios against naive and trl of the same shape."""
    lines = ["| shape | side | real tok/step | useful tok/s | model TFLOP/s | MFU | MFU 6N | peak GB | train loss last | eval loss "
             "| vs naive | vs trl | note |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if "useful_tok_s" not in r:
            lines.append(f"| {r['shape']} | {r['side']} |" + " |" * 11 + f" {r.get('skipped') or r.get('error')} |")
            continue
        base = {x["side"]: x for x in results if x["shape"] == r["shape"] and "useful_tok_s" in x}
        ratio = {k: f"{r['useful_tok_s'] / base[k]['useful_tok_s']:.2f}x" if k in base else "" for k in ("naive", "trl")}
        tps = r["tokens_per_step"]
        tok = f"{tps[0]:,}" if len(set(tps)) == 1 else f"{sum(tps) // len(tps):,} avg"
        pct = lambda v: f"{100 * v:.1f}%" if v is not None else "n/a"  # noqa: E731
        lines.append(f"| {r['shape']} | {r['side']} | {tok} | {r['useful_tok_s']:,.0f} | {r['flops_s'] / 1e12:.3g} | {pct(r.get('mfu'))} | "
                     f"{pct(r.get('mfu_6n'))} | {r['peak_gb'] if r['peak_gb'] is not None else 'n/a'} | "
                     f"{r['train_loss_last']:.4f} | {r['eval_loss']:.4f} | {ratio['naive']} | {ratio['trl']} | {r['note']} |")
    return "\n".join(lines)


def checks(results, device_type):
    """Like-with-like checks (same tokens every step, same loss) and, on CUDA, the issue's targets."""
    out = []
    for shape in dict.fromkeys(r["shape"] for r in results):
        ok = [r for r in results if r["shape"] == shape and "useful_tok_s" in r]
        if not ok:
            continue
        same = all(r["tokens_per_step"] == ok[0]["tokens_per_step"] and r["loss_tokens_per_step"] == ok[0]["loss_tokens_per_step"]
                   for r in ok)
        ev = [r["eval_loss"] for r in ok]
        out.append(f"{shape}: same real and answer tokens in every step on all {len(ok)} sides: {'yes' if same else 'NO'}; "
                   f"eval loss {ok[0]['eval_loss_start']:.4f} -> {min(ev):.4f}..{max(ev):.4f} (spread {max(ev) - min(ev):.4f})")
        by = {r["side"]: r for r in ok}
        if device_type != "cuda" or "llmfti" not in by:
            continue
        us = by["llmfti"]
        if "naive" in by:
            n = by["naive"]
            out.append(f"  target >=3x naive useful tok/s: {us['useful_tok_s'] / n['useful_tok_s']:.2f}x; "
                       f"peak mem <=0.6x naive: {us['peak_gb'] / n['peak_gb']:.2f}x")
        if "mfu" in us:
            out.append(f"  MFU {100 * us['mfu']:.1f}% (target >=50% on the 1B shape)")
        for peer in ("trl", "trl_row", "trl_liger"):
            if peer in by:
                p = by[peer]
                out.append(f"  vs {peer}: {us['useful_tok_s'] / p['useful_tok_s']:.2f}x useful tok/s (target >=1.0x), "
                           f"peak mem {us['peak_gb']} vs {p['peak_gb']} GB (target <=)")
    if device_type != "cuda":
        out.append("targets are GPU targets: not judged on CPU")
    return "\n".join(out)
