"""The demo (`make demo`): the main job on the embedded defaults, shown as the CLI commands a user
would type. Each step is idempotent, so running the demo twice shows incremental ingest (no commit)
and a promotion that an earlier eval of the same tuple already qualifies.

    python -m examples.demo

Deploying goes through the eval gate: `llmfti deploy` refuses a tuple (model, feature group at its
current commit, template, settings) without a passing eval, so the first run stages the deployment,
evaluates it with the python-reference suite (a few minutes on CPU) and then promotes it.
"""

from __future__ import annotations

from examples.common import CONFIG, DEPLOYMENT, FG, llmfti, prepare, stage_and_gate

QUESTIONS = [
    "What does the with statement do?",
    "What happens when break leaves a try statement with a finally clause?",
    "What does a bare raise statement do?",
]


def main() -> None:
    prepare()
    llmfti("fg", "show", FG)
    llmfti("fg", "search", FG, "What does the with statement do with __exit__?", "-k", "3")
    llmfti("fg", "search", FG, "async generator", "-k", "2", "--hybrid")
    llmfti("fg", "history", FG)
    if llmfti("deploy", CONFIG, check=False) != 0:
        print("\n# refused: no passing eval for this tuple yet. Stage it, gate it, then promote it.", flush=True)
        stage_and_gate()
        llmfti("deploy", CONFIG)
    for question in QUESTIONS:
        llmfti("ask", DEPLOYMENT, question)
    print(f"""
# Serve every active deployment over HTTP (OpenAPI at http://127.0.0.1:8000/docs):
    llmfti serve --port 8000
# then, from another shell:
    curl -s http://127.0.0.1:8000/v1/deployments/{DEPLOYMENT}/invoke -H 'content-type: application/json' \\
         -d '{{"question": "What does the with statement do?"}}'
    python -c "from openai import OpenAI; c = OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='unused'); \\
print(c.chat.completions.create(model='{DEPLOYMENT}', messages=[{{'role': 'user', 'content': 'What does yield do?'}}]).choices[0].message.content)"
# The eval report of the gate: build/eval-report.html""", flush=True)


if __name__ == "__main__":
    main()
