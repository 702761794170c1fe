"""The eval report as one self-contained HTML file: verdict, versions (the exact tuple), gate checks,
the worst cases, and every case's answer and scores.

    write_report(result, "report.html")       # result: llmfti.evaluation.run_eval(...)

No scripts or external assets: it opens offline and can be attached to a CI run as is.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

VERSION_KEYS = ("suite", "suite_version", "deployment", "deployment_version", "model", "feature_group", "commit", "prompt_fingerprint", "tuple_key", "judge")
_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
.pass{color:#070}.fail,.missing,.inconclusive{color:#b00;font-weight:bold}.skipped{color:#888}.low{background:#fde8e8}
.answer{max-width:40em;white-space:pre-wrap}"""


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return escape(str(v))


def render_report(result: dict) -> str:
    verdict = "PASS" if result["passed"] else "FAIL"
    metrics = sorted({m for c in result["cases"] for m in c["scores"]})
    thresholds = {c["metric"]: c["threshold"] for c in result["checks"]}
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>eval {escape(result['suite'])}: {verdict}</title>",
           f"<style>{_CSS}</style></head><body>",
           f"<h1>Eval <code>{escape(result['suite'])}</code> on <code>{escape(result['deployment'])}:{result['deployment_version']}</code>: "
           f"<span id='verdict' class='{verdict.lower()}'>{verdict}</span></h1>",
           f"<p>{result['n_cases']} cases in {result['duration_s']} s, at {escape(result['at'])}.</p>",
           "<h2>Versions</h2><table id='versions'>"]
    out += [f"<tr><th>{k}</th><td><code>{_fmt(result.get(k))}</code></td></tr>" for k in VERSION_KEYS]
    out.append("</table><h2>Gate</h2><table id='checks'><tr><th>metric</th><th>kind</th><th>value</th><th>CI</th><th>threshold</th><th>status</th></tr>")
    for c in result["checks"]:
        ci = f"[{_fmt(c.get('lower'))}, {_fmt(c.get('upper'))}] over {c['runs']} runs" if c["kind"] == "judged" and "runs" in c else ""
        out.append(f"<tr class='check' data-metric='{escape(c['metric'])}'><td>{escape(c['metric'])}</td><td>{c['kind']}</td><td>{_fmt(c['value'])}</td>"
                   f"<td>{ci}</td><td>{_fmt(c['threshold'])}</td><td class='{c['status']}'>{c['status']}</td></tr>")
    out.append("</table>")
    out += _comparison(result.get("comparison"))
    by_id = {c["id"]: c for c in result["cases"]}
    out.append("<section id='worst-cases'><h2>Worst cases</h2><ol>")
    for cid in result.get("worst_cases", []):
        c = by_id[cid]
        scores = ", ".join(f"{m} {_fmt(v)}" for m, v in sorted(c["scores"].items()))
        out.append(f"<li class='worst' data-case-id='{escape(cid)}'><b>{escape(cid)}</b>: {escape(c['question'])}<br>"
                   f"answer: <i>{escape(c['answer'])}</i><br>expected: {escape(c['reference'])}<br>"
                   f"sources {escape(', '.join(c['source_ids']))}; cited {escape(', '.join(c['cited_doc_ids']) or 'nothing')}<br>{scores}</li>")
    out.append("</ol></section><h2>Cases</h2><table id='cases'><tr><th>case</th><th>question</th><th>answer</th><th>cited</th>")
    out += [f"<th>{escape(m)}</th>" for m in metrics]
    out.append("<th>ms</th></tr>")
    for c in result["cases"]:
        cells = []
        for m in metrics:
            v = c["scores"].get(m)
            low = v is not None and m in thresholds and v < thresholds[m]
            cells.append(f"<td class='{'low' if low else ''}'>{_fmt(v)}</td>")
        out.append(f"<tr class='case' data-case-id='{escape(c['id'])}'><td>{escape(c['id'])}</td><td>{escape(c['question'])}</td>"
                   f"<td class='answer'>{escape(c['answer'])}</td><td>{escape(', '.join(c['cited_doc_ids']))}</td>{''.join(cells)}<td>{c['latency_ms']}</td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def _comparison(comp: dict | None) -> list[str]:
    if not comp:
        return ["<h2>Champion/challenger</h2><p id='comparison'>No other tuple serves this deployment: nothing to compare with.</p>"]
    ch = comp["champion"]
    verdict = "not significantly worse" if comp["passed"] else "SIGNIFICANTLY WORSE on " + ", ".join(comp["worse_on"])
    out = [f"<h2>Champion/challenger</h2><p id='comparison' class='{'pass' if comp['passed'] else 'fail'}'>Against the active "
           f"<code>{escape(ch['deployment'])}:{ch['deployment_version']}</code> (model <code>{escape(ch['model'])}</code>, tuple "
           f"<code>{escape(str(ch['tuple_key']))}</code>): {escape(verdict)}. {escape(comp['method'])}, tolerance {comp['tolerance']}, "
           f"confidence {comp['confidence']}.</p>",
           "<table id='comparison-metrics'><tr><th>metric</th><th>champion</th><th>mean difference</th><th>interval</th><th>cases</th><th>verdict</th></tr>"]
    for m, r in comp["metrics"].items():
        out.append(f"<tr><td>{escape(m)}</td><td>{_fmt(comp.get('champion_metrics', {}).get(m))}</td><td>{_fmt(r['mean_diff'])}</td>"
                   f"<td>[{_fmt(r['lower'])}, {_fmt(r['upper'])}]</td><td>{r['n']}</td><td class='{'fail' if r['worse'] else 'pass'}'>"
                   f"{'worse' if r['worse'] else 'ok'}</td></tr>")
    out.append("</table>")
    return out


def write_report(result: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result), encoding="utf-8")
    return path
