"""`python -m llmfti` is the same as the `llmfti` console script."""

from llmfti.cli import main

main()
