"""Eval suites and the gate that promotion and CI depend on (DESIGN point 9).

    from llmfti.evaluation import load_suite, run_eval, write_report
    suite = load_suite("python-reference")                  # evals/python-reference/
    result = run_eval(home, suite, DeploymentStore(home).staged("python-docs"))
    write_report(result, "report.html")

Modules: suites (cases + gate, content-hashed version), metrics (hit@k, MRR, offline Ragas metrics),
judge (optional LLM judge, N runs, t-interval), gate (pass/fail per metric), runner, report (HTML).
Ragas and torch are imported only when an eval runs.
"""

from __future__ import annotations


def __getattr__(name: str):
    # Lazy: `import llmfti.evaluation` must not import ragas (it pulls langchain and more).
    if name in ("load_suite", "Suite", "EvalCase", "GateConfig"):
        from llmfti.evaluation import suites

        return getattr(suites, name)
    if name == "run_eval":
        from llmfti.evaluation.runner import run_eval

        return run_eval
    if name in ("write_report", "render_report"):
        from llmfti.evaluation import report

        return getattr(report, name)
    if name == "apply_gate":
        from llmfti.evaluation.gate import apply_gate

        return apply_gate
    raise AttributeError(name)
