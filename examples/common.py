"""What the demo and the CI eval gate share: the corpus, the feature group, the deployment and the
suite they use, and running the `llmfti` CLI exactly as a user types it."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

CORPUS = "build/corpus"
FG = "python-reference"
DEPLOYMENT = "python-docs"
CONFIG = f"configs/deployments/{DEPLOYMENT}.yaml"
SUITE = "python-reference"
REPORT = "build/eval-report.html"


def llmfti(*args: str, check: bool = True) -> int:
    print(f"\n$ llmfti {shlex.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "llmfti", *args], check=check).returncode


def llmfti_json(*args: str, check: bool = True) -> dict:
    """Run `llmfti ARGS --json`: progress and logs go to the terminal, the one JSON document comes back."""
    print(f"\n$ llmfti {shlex.join(args)} --json", flush=True)
    proc = subprocess.run([sys.executable, "-m", "llmfti", *args, "--json"], stdout=subprocess.PIPE, text=True)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"llmfti {' '.join(args)} printed no JSON document (exit {proc.returncode})") from None


def prepare() -> None:
    """Models, corpus and feature group: idempotent (an unchanged corpus makes no new commit)."""
    from examples.python_reference_corpus import write_corpus

    llmfti("models", "pull-defaults")
    print(f"\n# writing the Python language reference (pydoc_data.topics) to {CORPUS}/", flush=True)
    write_corpus(CORPUS)
    llmfti("ingest", CORPUS, "--feature-group", FG, "--config", f"configs/features/{FG}.yaml")


def stage_and_gate() -> None:
    """Stage the deployment's current tuple and run the suite on it (raises if the gate fails)."""
    llmfti("deploy", CONFIG, "--stage")
    llmfti("eval", SUITE, "--deployment", DEPLOYMENT, "--staged", "--report", REPORT)
