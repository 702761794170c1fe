"""The agent service (FastAPI). `create_app(home)` builds it; `llmfti serve` runs it with uvicorn.

    POST /v1/deployments/{name}/invoke[?stream=true]   typed request -> answer, citations, versions, timings
    POST /v1/chat/completions                          OpenAI-compatible (model = deployment name)
    GET  /v1/deployments  /healthz  /readyz  /metrics  /docs (each deployment's request schema)

Auth: with LLMFTI_API_KEYS (comma-separated) or LLMFTI_API_KEYS_FILE (one per line) set, /v1 routes
need `Authorization: Bearer KEY` (401 otherwise); keys are never logged.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from llmfti.agents.body_limit import BodyLimit
from llmfti.agents.openai_routes import add_openai_routes
from llmfti.errors import ConfigError, LlmftiError, NotFoundError
from llmfti.models.generation import BackendUnavailable, GenerationTimeout
from llmfti.monitoring.timing import server_timing
from llmfti.pipelines.inference import online as pipeline

DEFAULT_MAX_BODY_BYTES = 64 * 1024


def load_api_keys() -> set[str]:
    keys = {k.strip() for k in os.environ.get("LLMFTI_API_KEYS", "").split(",") if k.strip()}
    keys_file = os.environ.get("LLMFTI_API_KEYS_FILE")
    if keys_file:
        keys |= {line.strip() for line in Path(keys_file).read_text().splitlines() if line.strip() and not line.startswith("#")}
    return keys


def error_status(exc: Exception) -> int:
    if isinstance(exc, pipeline.RequestInvalid):
        return 422
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, GenerationTimeout):
        return 504
    if isinstance(exc, BackendUnavailable):
        return 502
    if isinstance(exc, ConfigError):
        return 422
    if isinstance(exc, LlmftiError):
        return 409
    return 500


def create_app(home=None, *, api_keys: set[str] | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, generator_override=None, poll_interval_s: float = 1.0):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    from llmfti.agents.manager import DeploymentManager
    from llmfti.home import ProjectHome
    from llmfti.monitoring.metrics import ServiceMetrics
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    home = home if isinstance(home, ProjectHome) else ProjectHome.at(home)
    keys = load_api_keys() if api_keys is None else set(api_keys)
    manager = DeploymentManager(home, poll_interval_s=poll_interval_s, generator_override=generator_override)
    log = InferenceLog(FeatureStore(home))
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app):
        import anyio

        # Loading models takes seconds: off the event loop, so /healthz answers meanwhile.
        await anyio.to_thread.run_sync(log.flush)  # rows a killed predecessor left in its buffer
        log.start()
        await anyio.to_thread.run_sync(manager.start)
        try:
            yield
        finally:
            manager.stop()
            log.close()

    app = FastAPI(title="llmfti agent service", version="1", lifespan=lifespan,
                  description="Deployments couple a model version with a feature-group version. Clients send typed requests, never prompts.")
    app.state.manager, app.state.log, app.state.metrics = manager, log, metrics

    # Added first, so it runs inside the auth check: unauthenticated bodies are never read.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path.startswith("/v1/"):
            if keys:
                auth = request.headers.get("authorization", "")
                if not auth.startswith("Bearer ") or auth[7:].strip() not in keys:
                    return JSONResponse({"error": "missing or invalid API key", "type": "Unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    def failure(exc: Exception, request_id: str | None = None) -> JSONResponse:
        body = {"error": str(exc), "type": type(exc).__name__}
        if request_id:
            body["request_id"] = request_id
        if isinstance(exc, pipeline.RequestInvalid):
            body["detail"] = exc.errors
        return JSONResponse(body, status_code=error_status(exc))

    @app.post("/v1/deployments/{name}/invoke")
    def invoke(name: str, body: dict, stream: bool = False):
        request_id = uuid.uuid4().hex
        try:
            runtime = manager.get(name)
        except NotFoundError as exc:
            return failure(exc)
        if stream:
            try:
                prepared = pipeline.prepare_logged(runtime, body, log=log, metrics=metrics, request_id=request_id)
            except Exception as exc:
                return failure(exc, request_id)
            return StreamingResponse(_sse(prepared), media_type="text/event-stream")
        try:
            result = pipeline.invoke(runtime, body, log=log, metrics=metrics, request_id=request_id)
        except Exception as exc:
            return failure(exc, request_id)
        return JSONResponse(result, headers={"Server-Timing": server_timing(result["timings_ms"]), "X-Request-Id": result["request_id"]})

    def _sse(prepared):
        for kind, data in pipeline.stream_prepared(prepared, log=log, metrics=metrics):
            payload = {"token": data} if kind == "token" else data
            yield f"event: {kind}\ndata: {json.dumps(payload)}\n\n"

    @app.get("/v1/deployments")
    def deployments():
        out = []
        for name in manager.names():
            rt = manager.get(name)
            out.append({"name": name, "version": rt.version, "model": rt.config.model, "feature_group": rt.config.feature_group,
                        "commit": rt.record.get("commit"), "prompt_fingerprint": rt.encoder.fingerprint,
                        "request_schema": rt.request_model.model_json_schema()})
        return {"deployments": out}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "time": time.time()}

    @app.get("/readyz")
    def readyz():
        status = manager.status()
        # Ready when something is served: a failed new version keeps the old one serving (errors are
        # reported, and retried by the poller), so it must not take the whole server out of rotation.
        ready = bool(status["active"])
        return JSONResponse({"ready": ready, **status}, status_code=200 if ready else 503)

    @app.get("/metrics")
    def prometheus():
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    add_openai_routes(app, manager, log, metrics, failure)
    _per_deployment_openapi(app, manager)
    return app


def _per_deployment_openapi(app, manager) -> None:
    """OpenAPI shows each deployment's own request schema as a concrete path."""
    from fastapi.openapi.utils import get_openapi

    def openapi():
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for name in manager.names():
            model = manager.get(name).request_model
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schema.setdefault("components", {}).setdefault("schemas", {}).update(body.pop("$defs", {}))
            schema["components"]["schemas"][model.__name__] = body
            schema["paths"][f"/v1/deployments/{name}/invoke"] = {
                "post": {
                    "summary": f"Invoke deployment {name}", "operationId": f"invoke_{name}",
                    "parameters": [{"name": "stream", "in": "query", "schema": {"type": "boolean", "default": False}}],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}},
                    "responses": {"200": {"description": "answer, citations, request_id, versions, timings_ms"}, "422": {"description": "invalid request"}, "504": {"description": "generation timeout"}},
                }
            }
        return schema

    app.openapi = openapi
