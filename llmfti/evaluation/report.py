"""The eval report as one self-contained HTML file: verdict, the verdict per stage (retrieval vs
generation, and the stage a failure is attributed to), versions (the exact tuple), gate checks by
stage, the worst cases, and every case's answer and scores.

    write_report(result, "report.html")       # result: llmfti.evaluation.run_eval(...)

No scripts or external assets: it opens offline and can be attached to a CI run as is.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from llmfti.evaluation.metrics import METRIC_STAGES, failing_stage, stage_of, stage_verdicts

VERSION_KEYS = ("suite", "suite_version", "deployment", "deployment_version", "model", "feature_group", "commit", "prompt_fingerprint", "tuple_key", "judge")
_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
.pass{color:#070}.fail,.missing,.inconclusive{color:#b00;font-weight:bold}.skipped{color:#888}.low{background:#fde8e8}
.answer{max-width:40em;white-space:pre-wrap}.stage-head{text-align:center}"""
# What each stage's metrics judge: where to look when that stage fails.
STAGE_COVERS = {
    "retrieval": "feature pipeline and retrieval: feature group and commit, embedder, chunker, retrieval settings (k, hybrid)",
    "generation": "generation: model version, prompt template, generation settings (judged on what retrieval returned)",
}


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return escape(str(v))


def render_report(result: dict) -> str:
    verdict = "PASS" if result["passed"] else "FAIL"
    # Metrics grouped by stage (retrieval first, as the pipeline runs), then any others.
    seen = {m for c in result["cases"] for m in c["scores"]}
    groups = [(stage, [m for m in names if m in seen]) for stage, names in METRIC_STAGES.items()]
    groups.append(("other", sorted(m for m in seen if stage_of(m) == "other")))
    groups = [(stage, ms) for stage, ms in groups if ms]
    metrics = [m for _, ms in groups for m in ms]
    thresholds = {c["metric"]: c["threshold"] for c in result["checks"]}
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>eval {escape(result['suite'])}: {verdict}</title>",
           f"<style>{_CSS}</style></head><body>",
           f"<h1>Eval <code>{escape(result['suite'])}</code> on <code>{escape(result['deployment'])}:{result['deployment_version']}</code>: "
           f"<span id='verdict' class='{verdict.lower()}'>{verdict}</span></h1>",
           f"<p>{result['n_cases']} cases in {result['duration_s']} s, at {escape(result['at'])}.</p>"]
    out += _stages(result)
    out.append("<h2>Versions</h2><table id='versions'>")
    out += [f"<tr><th>{k}</th><td><code>{_fmt(result.get(k))}</code></td></tr>" for k in VERSION_KEYS]
    out.append("</table><section id='checks'><h2>Gate</h2>")
    for stage in list(METRIC_STAGES) + ["other"]:
        checks = [c for c in result["checks"] if stage_of(c["metric"]) == stage]
        ungated = [m for m in (result.get("metrics") or {}) if stage_of(m) == stage and m not in thresholds]
        if not checks and not ungated:
            continue
        out.append(f"<h3>{stage.capitalize()}</h3><table id='checks-{stage}'><tr><th>metric</th><th>kind</th><th>value</th><th>CI</th>"
                   "<th>threshold</th><th>status</th></tr>")
        for c in checks:
            ci = f"[{_fmt(c.get('lower'))}, {_fmt(c.get('upper'))}] over {c['runs']} runs" if c["kind"] == "judged" and "runs" in c else ""
            out.append(f"<tr class='check' data-metric='{escape(c['metric'])}' data-stage='{stage}'><td>{escape(c['metric'])}</td><td>{c['kind']}</td>"
                       f"<td>{_fmt(c['value'])}</td><td>{ci}</td><td>{_fmt(c['threshold'])}</td><td class='{c['status']}'>{c['status']}</td></tr>")
        for m in ungated:  # measured, shown, but no threshold in gate.yaml
            out.append(f"<tr class='ungated' data-metric='{escape(m)}' data-stage='{stage}'><td>{escape(m)}</td><td>measured</td>"
                       f"<td>{_fmt(result['metrics'][m])}</td><td></td><td>–</td><td class='skipped'>not gated</td></tr>")
        out.append("</table>")
    out.append("</section>")
    out += _behaviour(result.get("behaviour"))
    out += _comparison(result.get("comparison"))
    by_id = {c["id"]: c for c in result["cases"]}
    out.append("<section id='worst-cases'><h2>Worst cases</h2><ol>")
    for cid in result.get("worst_cases", []):
        c = by_id[cid]
        scores = "; ".join(f"{stage}: " + ", ".join(f"{m} {_fmt(c['scores'].get(m))}" for m in ms if m in c["scores"])
                           for stage, ms in groups if any(m in c["scores"] for m in ms))
        out.append(f"<li class='worst' data-case-id='{escape(cid)}'><b>{escape(cid)}</b>: {escape(c['question'])}<br>"
                   f"answer: <i>{escape(c['answer'])}</i><br>expected: {escape(c['reference'])}<br>"
                   f"sources {escape(', '.join(c['source_ids']))}; cited {escape(', '.join(c['cited_doc_ids']) or 'nothing')}<br>{scores}</li>")
    out.append("</ol></section><h2>Cases</h2><table id='cases'><tr><th colspan='4'></th>")
    out += [f"<th class='stage-head' colspan='{len(ms)}'>{stage}</th>" for stage, ms in groups]
    out.append("<th></th></tr><tr><th>case</th><th>question</th><th>answer</th><th>cited</th>")
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


def _stages(result: dict) -> list[str]:
    """The verdict per stage and the stage a failure is attributed to. Results stored before stages
    existed get them from their checks (without the champion comparison's metrics)."""
    stages = result.get("stages") or stage_verdicts(result["checks"])
    attributed = failing_stage(stages)
    if attributed is None:
        line = "Every gated stage passes." if result["passed"] else "The failure is in no stage's metrics."
    else:
        line = f"Regression attributed to <b>{attributed}</b>: {escape(STAGE_COVERS.get(attributed, ''))}."
        later = [s for s in METRIC_STAGES if s != attributed and s in stages and not stages[s]["passed"]]
        if later:
            line += f" {', '.join(later).capitalize()} fails too, possibly as a consequence: re-evaluate after fixing {attributed}."
    out = [f"<section id='stages'><h2>Stages</h2><p id='attribution' data-stage='{attributed or ''}' "
           f"class='{'fail' if attributed else 'pass'}'>{line}</p>",
           "<table id='stage-verdicts'><tr><th>stage</th><th>covers</th><th>gated metrics</th><th>verdict</th><th>failing</th></tr>"]
    for stage, v in stages.items():
        status = "fail" if not v["passed"] else ("pass" if v["gated"] else "skipped")
        label = {"fail": "FAIL", "pass": "pass", "skipped": "not gated"}[status]
        out.append(f"<tr class='stage' data-stage='{escape(stage)}'><td>{escape(stage)}</td><td>{escape(STAGE_COVERS.get(stage, ''))}</td>"
                   f"<td>{escape(', '.join(v['gated']) or '–')}</td><td class='{status}'>{label}</td><td>{escape(', '.join(v['failing']) or '–')}</td></tr>")
    out.append("</table></section>")
    return out


def _behaviour(b: dict | None) -> list[str]:
    """What the model does, read off its answers (llmfti.evaluation.behaviour): a fine-tune that learned to
    loop, to answer in three words or to stop citing shows here before it shows in the metrics."""
    if not b or not b.get("answers"):
        return []
    rows = [("mean_words", "words per answer"), ("repetition_rate", "answers that repeat themselves"),
            ("cited_share", "answers citing a context as [n]"), ("refusal_share", "answers saying the contexts do not hold it")]
    return ["<h2>Behaviour</h2><table id='behaviour'>"] + [
        f"<tr data-key='{k}'><th>{label}</th><td>{_fmt(b.get(k))}</td></tr>" for k, label in rows] + ["</table>"]


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
