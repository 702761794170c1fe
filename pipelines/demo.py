"""The demo (`make demo`): the main job on the embedded defaults, shown as the CLI commands a user
would type. Each step is idempotent, so running the demo twice shows incremental ingest (no commit).

    python -m pipelines.demo
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from pipelines.python_reference_corpus import write_corpus

CORPUS = "build/corpus"
FG = "python-reference"


def llmfti(*args: str) -> None:
    print(f"\n$ llmfti {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "llmfti", *args], check=True)


def main() -> None:
    llmfti("models", "pull-defaults")
    print(f"\n# writing the Python language reference (pydoc_data.topics) to {CORPUS}/", flush=True)
    write_corpus(CORPUS)
    llmfti("ingest", CORPUS, "--feature-group", FG, "--config", f"configs/features/{FG}.yaml")
    llmfti("fg", "show", FG)
    llmfti("fg", "search", FG, "What does the with statement do with __exit__?", "-k", "3")
    llmfti("fg", "search", FG, "async generator", "-k", "2", "--hybrid")
    llmfti("fg", "history", FG)


if __name__ == "__main__":
    main()
