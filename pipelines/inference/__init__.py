"""The inference pipeline: a deployment (model version + feature-group version + settings) ->
answers with citations, versions and per-stage timings, every request logged.

    from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime
    from llmfti.pipelines.inference.online import invoke
    runtime = build_runtime(home, DeploymentStore(home).active("python-docs"), RuntimeCache())
    invoke(runtime, {"question": "What does yield do?"})

Modules: runtime (a loaded deployment version), retrieval (pinned-commit search), online (the
stages: on_demand -> embed_query -> retrieve -> build_prompt -> generate -> log), replay.
Used by the agent service (`llmfti.agents`), the evaluation pipeline and batch inference.
"""
