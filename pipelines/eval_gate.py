"""The CI eval gate (`make eval-gate`): on the embedded defaults, build the demo corpus and feature
group, stage the demo deployment, and gate it with the demo suite. Exits non-zero when a metric falls
below the thresholds in evals/python-reference/gate.yaml; the HTML report lands in build/.

    python -m pipelines.eval_gate
"""

from __future__ import annotations

import subprocess
import sys

from pipelines.demo import CORPUS, FG, llmfti
from pipelines.python_reference_corpus import write_corpus

DEPLOYMENT = "python-docs"
CONFIG = f"configs/deployments/{DEPLOYMENT}.yaml"
SUITE = "python-reference"
REPORT = "build/eval-report.html"


def prepare() -> None:
    """Models, corpus and feature group: idempotent (an unchanged corpus makes no new commit)."""
    llmfti("models", "pull-defaults")
    print(f"\n# writing the Python language reference (pydoc_data.topics) to {CORPUS}/", flush=True)
    write_corpus(CORPUS)
    llmfti("ingest", CORPUS, "--feature-group", FG, "--config", f"configs/features/{FG}.yaml")


def stage_and_gate() -> None:
    """Stage the deployment's current tuple and run the suite on it (raises if the gate fails)."""
    llmfti("deploy", CONFIG, "--stage")
    llmfti("eval", SUITE, "--deployment", DEPLOYMENT, "--staged", "--report", REPORT)


def main() -> None:
    prepare()
    try:
        stage_and_gate()
    except subprocess.CalledProcessError as exc:
        print(f"\neval gate FAILED (exit {exc.returncode}); report: {REPORT}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"\neval gate passed; report: {REPORT}", flush=True)


if __name__ == "__main__":
    main()
