"""The inference pipelines (agents) and the HTTP service that serves deployments.

    from agents.app import create_app       # FastAPI app factory
    llmfti serve --port 8000                # the same, from the CLI
"""
