"""Replay a logged request against exactly the versions it used (deployment version, model, feature
group commit, logged on-demand feature values) and report whether the prompt and the greedy output
are identical."""

from __future__ import annotations

from llmfti.errors import NotFoundError
from llmfti.pipelines.inference import online
from llmfti.pipelines.inference.runtime import RuntimeCache, build_runtime


def replay(home, request_id: str) -> dict:
    from llmfti.registry.deployments import DeploymentStore
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    log = InferenceLog(FeatureStore(home))
    log.flush()
    rows = log.query(request_id=request_id, limit=1)
    log.close()
    if not rows:
        raise NotFoundError(f"no logged request {request_id!r}")
    row = rows[0]
    if not isinstance(row["request"], dict) or online.REJECTED_BODY in row["request"] or "undecodable" in row["request"]:
        from llmfti.errors import ConfigError

        raise ConfigError(f"request {request_id} was rejected before it reached the pipeline ({row.get('status')}: "
                          f"{(row.get('error') or '')[:200]}); there is no answer to replay")
    record = DeploymentStore(home).get(row["deployment"], row["deployment_version"])
    runtime = build_runtime(home, record, RuntimeCache())
    result = online.invoke(runtime, row["request"], features=row["features"] or {}, commit=row["commit"], return_prompt=True)
    same_fp = result["versions"]["prompt_fingerprint"] == row["prompt_fingerprint"]
    same_prompt = row["prompt_text"] is None or result["prompt_text"] == row["prompt_text"]
    greedy = runtime.config.generation.temperature == 0
    return {
        "request_id": request_id, "deployment": f"{row['deployment']}:{row['deployment_version']}", "commit": row["commit"],
        "prompt_fingerprint_identical": same_fp, "prompt_identical": same_prompt, "output_identical": result["answer"] == row["output"],
        "greedy": greedy, "logged_output": row["output"], "replayed_output": result["answer"],
        "identical": same_fp and same_prompt and result["answer"] == row["output"],
    }
