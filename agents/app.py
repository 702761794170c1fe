"""The agent service (FastAPI). `create_app(home)` builds it; `llmfti serve` runs it with uvicorn
(`llmfti.agents.serve.run`, which adds a header-read timeout).

    POST /v1/deployments/{name}/invoke[?stream=true]   typed request -> answer, citations, versions, timings
    POST /v1/chat/completions                          OpenAI-compatible (model = deployment name)
    GET  /v1/deployments  /healthz  /readyz  /metrics  /docs (each deployment's request schema)

Auth (`llmfti.agents.auth`): with LLMFTI_API_KEYS (comma-separated) or LLMFTI_API_KEYS_FILE (one per
line) set, /v1 routes need `Authorization: Bearer KEY` (401 otherwise); keys are never logged. A key
source that is set but holds no key refuses to start. LLMFTI_PROTECT_DOCS=1 puts /docs,
/openapi.json and /metrics behind the same keys.

Under load: /healthz and /readyz are async and never wait for the worker threads that run requests;
at most `max_in_flight` (LLMFTI_MAX_IN_FLIGHT, default 32) requests generate at once, the next ones
get 503 with Retry-After. Bodies have a size cap (413) and a deadline (408).

Every response carries `X-Request-Id`; every error body is JSON with the request id. Server-side
failures show a fixed message; their details (and tracebacks) go to the server log with the id
(`llmfti.agents.errors`).
"""

from __future__ import annotations

import json
import os
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Body, Request  # module level: FastAPI resolves route annotations in module globals

from llmfti.agents.auth import AuthGuard, clean_keys, load_api_keys
from llmfti.agents.body_limit import DEFAULT_BODY_TIMEOUT_S, BodyLimit
from llmfti.agents.concurrency import DEFAULT_MAX_IN_FLIGHT, ConcurrencyLimit
from llmfti.agents.context import RequestContext
from llmfti.agents.errors import ERROR_RESPONSES, error_body, error_status  # noqa: F401 (error_status: part of this module's API)
from llmfti.agents.openai_routes import add_openai_routes
from llmfti.agents.manager import DeploymentUnavailable
from llmfti.errors import ConfigError, NotFoundError
from llmfti.logs import get_logger
from llmfti.monitoring.timing import server_timing
from llmfti.pipelines.inference import online as pipeline

DEFAULT_MAX_BODY_BYTES = 64 * 1024
logger = get_logger("llmfti.agents.app")
# Worker threads beyond max_in_flight: the few sync routes that are not generations (listings).
_SPARE_THREADS = 8


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def _env_flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1/true/yes or 0/false/no, got {raw!r}")


def create_app(home=None, *, api_keys: set[str] | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, generator_override=None,
               poll_interval_s: float = 1.0, max_in_flight: int | None = None, protect_docs: bool | None = None,
               body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S):
    """The service app. `api_keys` None reads the environment (an empty set means no auth);
    `max_in_flight` None reads LLMFTI_MAX_IN_FLIGHT (default 32); `protect_docs` None reads LLMFTI_PROTECT_DOCS."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from llmfti.agents.manager import DeploymentManager
    from llmfti.home import ProjectHome
    from llmfti.monitoring.metrics import ServiceMetrics
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    # Configuration first: a service that would start without the auth it was configured with must not start.
    keys = load_api_keys() if api_keys is None else clean_keys(api_keys)
    protect_docs = _env_flag("LLMFTI_PROTECT_DOCS") if protect_docs is None else protect_docs
    if protect_docs and not keys:
        raise ConfigError("protect_docs (LLMFTI_PROTECT_DOCS) needs API keys: set LLMFTI_API_KEYS or LLMFTI_API_KEYS_FILE")
    max_in_flight = _env_int("LLMFTI_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT) if max_in_flight is None else max_in_flight
    if max_in_flight < 1:
        raise ConfigError(f"max_in_flight must be at least 1, got {max_in_flight}")

    logger.info("agent service: auth %s%s, max_in_flight %d, body cap %d bytes / %gs",
                f"on ({len(keys)} key(s))" if keys else "OFF (no API keys configured)", ", docs and metrics protected" if protect_docs else "",
                max_in_flight, max_body_bytes, body_timeout_s)

    home = home if isinstance(home, ProjectHome) else ProjectHome.at(home)
    manager = DeploymentManager(home, poll_interval_s=poll_interval_s, generator_override=generator_override)
    log = InferenceLog(FeatureStore(home))
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app):
        import anyio

        # Every admitted request gets a worker thread at once (the default pool has 40).
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, max_in_flight + _SPARE_THREADS)
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

    # Starlette runs the last added outermost: RequestContext -> AuthGuard -> BodyLimit -> ConcurrencyLimit.
    # Unauthenticated bodies are never read, and a body is read before it takes a generation slot.
    app.add_middleware(ConcurrencyLimit, max_in_flight=max_in_flight)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, timeout_s=body_timeout_s)
    app.add_middleware(AuthGuard, keys=keys, protect_docs=protect_docs)
    app.add_middleware(RequestContext)

    def failure(exc: Exception, request_id: str | None = None) -> JSONResponse:
        status, body = error_body(exc, request_id)
        return JSONResponse(body, status_code=status)

    def _log_invalid(name: str | None, raw, exc: Exception, request_id: str) -> None:
        """A row for an invalid request to a deployment that exists (like every other request)."""
        try:
            runtime = manager.get(name) if name else None
        except (NotFoundError, DeploymentUnavailable):
            return
        if runtime is not None:
            pipeline.log_failure(runtime, raw, exc, log, metrics, request_id=request_id)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        # A body that is not JSON, or a bad query parameter: our error shape, with the request id.
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "value_error")} for e in exc.errors()]
        err = pipeline.RequestInvalid("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors), errors)
        request_id = request.state.request_id
        _log_invalid(request.path_params.get("name"), None, err, request_id)
        return failure(err, request_id)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        body = {"error": str(exc.detail), "type": "HTTPError", "request_id": request.state.request_id}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    # Not in the OpenAPI document as a template: each deployment's concrete path is, with its own request
    # schema (_per_deployment_openapi); a name no deployment has is a 404 like any unknown path.
    @app.post("/v1/deployments/{name}/invoke", include_in_schema=False)
    def invoke(name: str, request: Request, body: Any = Body(None), stream: bool = False):
        # `Any`: a body that is JSON but not an object is the deployment's 422 (with a log row), not FastAPI's.
        request_id = request.state.request_id
        try:
            runtime = manager.get(name)
        except (NotFoundError, DeploymentUnavailable) as exc:
            return failure(exc, request_id)
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
            if kind == "error":
                _, payload = error_body(data, prepared.request_id)
            else:
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

    # async: answered on the event loop, never queued behind the worker threads generating answers.
    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "time": time.time()}

    @app.get("/readyz")
    async def readyz():
        status = manager.status()
        # Ready when something is served: a failed new version keeps the old one serving (errors are
        # reported, and retried by the poller), so it must not take the whole server out of rotation.
        ready = bool(status["active"])
        return JSONResponse({"ready": ready, **status}, status_code=200 if ready else 503)

    @app.get("/metrics", response_class=Response, responses={200: {"description": "Prometheus text exposition format",
                                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def prometheus():
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    add_openai_routes(app, manager, log, metrics, failure)
    _per_deployment_openapi(app, manager)
    return app


def _per_deployment_openapi(app, manager) -> None:
    """OpenAPI shows each deployment's own request schema as a concrete path."""
    from fastapi.openapi.utils import get_openapi

    from llmfti.agents.openai_routes import chat_request_schema

    def openapi():
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        chat_body, chat_components = chat_request_schema()
        schema.setdefault("components", {}).setdefault("schemas", {}).update(chat_components)
        schema["paths"]["/v1/chat/completions"]["post"]["requestBody"] = chat_body
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
                    "responses": {"200": {"description": "answer, citations, request_id, versions, timings_ms"},
                                  **{str(code): spec for code, spec in ERROR_RESPONSES.items()}},
                }
            }
        return schema

    app.openapi = openapi
