"""The agent service, installed as `llmfti.agents`: the FastAPI app that serves deployments over HTTP
(invoke, OpenAI-compatible chat completions, health, metrics), auth, limits and the hot-swap
manager. Each request runs the inference pipeline (`llmfti.pipelines.inference`).

    from llmfti.agents.app import create_app       # FastAPI app factory
    llmfti serve --port 8000                       # the same, from the CLI
"""

if __name__ != "llmfti.agents":  # installed as llmfti.agents: `agents` is another SDK's import name
    raise ImportError(f"import llmfti.agents, not {__name__!r}: the top-level name 'agents' belongs to another SDK")
