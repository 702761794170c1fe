"""The CI eval gate (`make eval-gate`): on the embedded defaults, build the demo corpus and feature
group, stage the demo deployment, and gate it with the demo suite. Exits non-zero when a metric falls
below the thresholds in evals/python-reference/gate.yaml; the HTML report lands in build/.

    python -m examples.eval_gate
"""

from __future__ import annotations

import subprocess
import sys

from examples.common import REPORT, prepare, stage_and_gate


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
