"""Eval suites and the gate that promotion and CI depend on (DESIGN point 9).

    from llmfti.evaluation import load_suite, write_report
    suite = load_suite("python-reference")                  # evals/python-reference/
    write_report(result, "report.html")                     # result: llmfti.pipelines.evaluation.run_eval

Modules: suites (cases + gate, content-hashed version), metrics (hit@k, MRR, offline Ragas metrics),
judge (optional LLM judge, N runs, t-interval), gate (pass/fail per metric), report (HTML). The
pipeline that runs a suite on a deployment is `llmfti.pipelines.evaluation`.
Ragas and torch are imported only when an eval runs.
"""

from __future__ import annotations


def __getattr__(name: str):
    # Lazy: `import llmfti.evaluation` must not import ragas (it pulls langchain and more).
    if name in ("load_suite", "Suite", "EvalCase", "GateConfig"):
        from llmfti.evaluation import suites

        return getattr(suites, name)
    if name in ("write_report", "render_report"):
        from llmfti.evaluation import report

        return getattr(report, name)
    if name == "apply_gate":
        from llmfti.evaluation.gate import apply_gate

        return apply_gate
    raise AttributeError(name)
