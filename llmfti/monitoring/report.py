"""The monitoring report as one self-contained HTML file: alerts first, then volume and errors,
latency per stage, tokens, retrieval quality and grounding, query drift against the baseline, the
topics served worst and the feature-group change, each with its plot.

    write_report(result, images, "monitor.html")     # from llmfti.pipelines.monitoring.monitor(...)

Plots are PNGs embedded as base64 data URIs: no JavaScript, no external asset, no network; the file
can be mailed or attached to a CI run (a few hundred kB).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
.alert{color:#b00;font-weight:bold}.ok{color:#070;font-weight:bold}.note{color:#555}img{display:block;max-width:100%;margin:.5em 0}
code{background:#f6f6f6;padding:0 3px}"""


def _f(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return escape(str(v))


def _pct(v) -> str:
    return "–" if v is None else f"{v:.1%}"


def _img(images: dict, name: str, alt: str) -> str:
    data = images.get(name)
    return f"<img id='plot-{name}' class='plot' alt='{escape(alt)}' src='data:image/png;base64,{data}'>" if data else ""


def _versions(result: dict) -> list[tuple[str, dict]]:
    """Rows per version, plus "all" only when there is more than one version (it would repeat it)."""
    items = list(result["versions"].items())
    per_version = [(v, s) for v, s in items if v != "all"]
    return items if len(per_version) > 1 or not per_version else per_version


def _alerts(result: dict) -> list[str]:
    alerts = result.get("alerts", [])
    if not alerts:
        return ["<section id='alerts'><h2>Alerts</h2><p class='ok'>No threshold crossed.</p></section>"]
    out = ["<section id='alerts'><h2>Alerts</h2><ul>"]
    out += [f"<li class='alert' data-alert='{escape(a['name'])}'>{escape(a['name'])} ({escape(a['scope'])}): {escape(a['message'])}</li>" for a in alerts]
    out.append("</ul></section>")
    return out


def _volume(result: dict, images: dict) -> list[str]:
    out = ["<section id='volume'><h2>Volume and errors</h2><table><tr><th>version</th><th>requests</th><th>error rate</th><th>by status</th></tr>"]
    for v, s in _versions(result):
        statuses = ", ".join(f"{escape(k)} {c}" for k, c in s["by_status"].items())
        out.append(f"<tr><td>{escape(v)}</td><td>{s['requests']}</td><td>{_pct(s['error_rate'])}</td><td>{statuses}</td></tr>")
    out.append("</table>" + _img(images, "volume", "requests over time") + "</section>")
    return out


def _latency(result: dict, images: dict) -> list[str]:
    out = ["<section id='latency'><h2>Latency per stage (ms)</h2><table><tr><th>version</th><th>stage</th><th>p50</th><th>p90</th><th>p95</th>"
           "<th>p99</th><th>n</th></tr>"]
    for v, s in _versions(result):
        for stage, p in s["latency_ms"].items():
            out.append(f"<tr><td>{escape(v)}</td><td>{escape(stage)}</td><td>{_f(p['p50'])}</td><td>{_f(p['p90'])}</td><td>{_f(p['p95'])}</td>"
                       f"<td>{_f(p['p99'])}</td><td>{p['n']}</td></tr>")
    out.append("</table>")
    ref = result.get("reference")
    out.append(f"<p class='note'>Reference window for regressions: {escape(ref['label']) if ref else 'none (only absolute limits apply)'}.</p>")
    regs = result.get("latency_regressions", [])
    if regs:
        out.append("<ul>" + "".join(f"<li class='alert'>{escape(r['stage'])}: p95 {r['current_ms']} ms "
                                    + (f"vs {r['reference_ms']} ms (x{r['ratio']})" if r["kind"] == "regression" else f"over the limit {r['limit_ms']} ms")
                                    + "</li>" for r in regs) + "</ul>")
    out.append(_img(images, "latency", "latency per stage") + "</section>")
    return out


def _tokens(result: dict) -> list[str]:
    out = ["<section id='tokens'><h2>Tokens</h2><table><tr><th>version</th><th>prompt p50 / p95</th><th>completion p50 / p95</th>"
           "<th>prompt total</th><th>completion total</th></tr>"]
    for v, s in _versions(result):
        t = s["tokens"]
        pp = f"{_f((t['prompt'] or {}).get('p50'), 0)} / {_f((t['prompt'] or {}).get('p95'), 0)}"
        cp = f"{_f((t['completion'] or {}).get('p50'), 0)} / {_f((t['completion'] or {}).get('p95'), 0)}"
        out.append(f"<tr><td>{escape(v)}</td><td>{pp}</td><td>{cp}</td><td>{t['prompt_total']}</td><td>{t['completion_total']}</td></tr>")
    out.append("</table></section>")
    return out


def _retrieval(result: dict, images: dict) -> list[str]:
    out = ["<section id='retrieval'><h2>Retrieval quality (no labels)</h2><table><tr><th>version</th><th>answered</th><th>no context</th>"
           "<th>weak or none</th><th>top-1 p50</th><th>top-k mean</th><th>scores</th></tr>"]
    for v, s in _versions(result):
        r = s["retrieval"]
        if r.get("configured") is False:
            out.append(f"<tr><td>{escape(v)}</td><td colspan='6'>no retrieval configured (k = 0)</td></tr>")
            continue
        out.append(f"<tr><td>{escape(v)}</td><td>{r['requests']}</td><td>{_pct(r['no_context_share'])}</td><td>{_pct(r['weak_or_none_share'])}</td>"
                   f"<td>{_f((r['top1'] or {}).get('p50'))}</td><td>{_f((r['topk_mean'] or {}).get('mean'))}</td><td>{escape(r['score_kind'])}</td></tr>")
    out.append("</table>")
    g = result.get("grounding") or {}
    out.append(f"<p id='grounding'>Grounding (lexical proxy, {g.get('answers', 0)} sampled answers): {_pct(g.get('ungrounded_share'))} of the answers "
               f"have less than {_pct(g.get('threshold'))} of their content words in their contexts (mean share {_f(g.get('mean'))}).</p>")
    judge = result.get("judge") or {}
    out.append(f"<p class='note'>LLM-judged metrics: {escape(judge.get('reason', 'not computed'))}</p>")
    out.append(_img(images, "retrieval", "top-1 score and grounding distributions") + "</section>")
    return out


def _drift(result: dict, images: dict) -> list[str]:
    d = result.get("drift") or {}
    out = ["<section id='drift'><h2>Query drift</h2>"]
    if not d.get("computed"):
        out.append(f"<p class='note'>Not computed: {escape(d.get('reason', 'no baseline'))}</p></section>")
        return out
    m, c, ln = d["mmd"], d["classifier"], d.get("length") or {}
    out.append(f"<p>Baseline <code>{escape(d['baseline'])}</code>: {d['n_baseline']} vectors; window: {d['n_current']} vectors "
               f"(each sampled to at most {d['sample_limit']}).</p><table>"
               f"<tr><th>MMD² (RBF, median bandwidth)</th><td>{_f(m['mmd2_unbiased'], 5)}</td><th>permutation p-value</th><td>{_f(m['p_value'], 4)} "
               f"({m['permutations']} permutations)</td></tr>"
               f"<tr><th>domain classifier AUC</th><td>{_f(c['auc'])} (s.e. if no drift {_f(c.get('se_null'))})</td><th>method</th><td>linear (ridge) classifier, {c['folds']}-fold CV on "
               f"{c['components']} PCA components (fitted on both windows)</td></tr>"
               f"<tr><th>mean query length</th><td>{_f(ln.get('baseline_mean'), 1)} → {_f(ln.get('current_mean'), 1)} words</td>"
               f"<th>KS p-value</th><td>{_f(ln.get('p_value'), 4)}</td></tr></table>")
    if d.get("excluded"):
        out.append(f"<p class='note'>{escape(d['excluded'])}</p>")
    out.append(_img(images, "drift", "query vectors and lengths, baseline vs window") + "</section>")
    return out


def _topics(result: dict, images: dict) -> list[str]:
    topics = result.get("topics") or []
    out = ["<section id='topics'><h2>Topics served worst</h2>"]
    if not topics:
        out.append(f"<p class='note'>{escape(result.get('topics_note') or 'Too few queries with vectors to cluster.')}</p></section>")
        return out
    out.append("<table><tr><th>topic</th><th>queries</th><th>failed or weak</th><th>error rate</th><th>weak/no context</th><th>examples</th></tr>")
    for t in topics:
        ex = "<br>".join(escape(q) for q in t["examples"])
        out.append(f"<tr class='topic'><td>#{t['topic']}</td><td>{t['size']}</td><td>{_pct(t['bad_share'])}</td><td>{_pct(t['error_rate'])}</td>"
                   f"<td>{_pct(t['weak_share'])}</td><td>{ex}</td></tr>")
    out.append("</table>" + _img(images, "topics", "topics served worst") + "</section>")
    return out


def _corpus(result: dict) -> list[str]:
    c = result.get("feature_group_change")
    out = ["<section id='corpus'><h2>Feature-group change</h2>"]
    if not c or not c.get("computed"):
        out.append(f"<p class='note'>{escape((c or {}).get('reason', 'not computed'))}</p></section>")
        return out
    docs, emb = c["documents"], c["embeddings"]
    out.append(f"<p><code>{escape(c['feature_group'])}</code> commit {c['from_commit']} → {c['to_commit']}</p><table>"
               f"<tr><th>documents added / updated / deleted / unchanged</th><td>{docs['added']} / {docs['updated']} / {docs['deleted']} / {docs['unchanged']}</td></tr>"
               f"<tr><th>chunks before → after</th><td>{emb['chunks_before']} → {emb['chunks_after']} ({_pct(emb['chunks_changed_share'])} new chunks)</td></tr>"
               f"<tr><th>centroid cosine distance</th><td>{_f(emb['centroid_cosine_distance'], 5)}</td></tr>"
               f"<tr><th>MMD² between chunk vectors (0 = same distribution)</th><td>{_f(emb['mmd2'], 5)}</td></tr></table>")
    for kind in ("added", "updated", "deleted"):
        ids = docs.get(f"{kind}_ids") or []
        if ids:
            out.append(f"<p>{kind}: {escape(', '.join(ids))}{' …' if docs[kind] > len(ids) else ''}</p>")
    out.append("</section>")
    return out


def render_report(result: dict, images: dict[str, str]) -> str:
    w = result["window"]
    verdict = f"{len(result.get('alerts', []))} alert(s)" if result.get("alerts") else "no alert"
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>monitor {escape(result['deployment'])}: {verdict}</title>",
           f"<style>{_CSS}</style></head><body>",
           f"<h1>Monitoring <code>{escape(result['deployment'])}</code>: <span class='{'alert' if result.get('alerts') else 'ok'}'>{verdict}</span></h1>",
           f"<p>Window {escape(w['since'] or 'start of the log')} → {escape(w['until'])}; {result['requests']} requests; generated {escape(result['generated_at'])} "
           f"in {result['duration_s']} s. Active version {result['active_version']} (model <code>{escape(result['model'])}</code>, feature group "
           f"<code>{escape(str(result['feature_group']))}</code>).</p>"]
    out += [f"<p class='note'>{escape(n)}</p>" for n in result.get("notes", [])]
    out += _alerts(result)
    out += _volume(result, images)
    out += _latency(result, images)
    out += _tokens(result)
    out += _retrieval(result, images)
    out += _drift(result, images)
    out += _topics(result, images)
    out += _corpus(result)
    out.append("</body></html>")
    return "\n".join(out)


def write_report(result: dict, images: dict[str, str], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, images), encoding="utf-8")
    return path
