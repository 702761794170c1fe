"""OpenAI-compatible `/v1/chat/completions`: model = deployment name, the last user message is the
question. The official `openai` client works unchanged, streaming included (with
`stream_options.include_usage`). The deployment's own pipeline runs (retrieval, template, logging):
clients still never send the prompt.

The body is validated (`ChatCompletionRequest`): malformed `messages` (a string, numbers, content
parts that are not text) are a 422 with the request id and an inference-log row, like any invalid
request. Generation settings belong to the deployment: `n` other than 1, and a `max_tokens` (or
`max_completion_tokens`) below the deployment's `max_new_tokens`, cannot be honoured and are a 422 that
says so (they were silently ignored); a larger budget is within what the deployment does. Other
OpenAI parameters (temperature, top_p, ...) are accepted and ignored.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from fastapi import Body, Request  # module level: FastAPI resolves route annotations in module globals
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmfti.pipelines.inference import online as pipeline


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, tool_call_id...

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, description="Choices per request: this service answers with one (n=1).")
    max_tokens: int | None = Field(None, ge=1, description="At least the deployment's max_new_tokens (it answers within its own budget).")
    max_completion_tokens: int | None = Field(None, ge=1, description="As max_tokens.")


def _unsupported(chat: ChatCompletionRequest, max_new_tokens: int) -> list[dict]:
    """What this deployment cannot honour, as 422 detail items (empty: all fine)."""
    problems = []
    if chat.n not in (None, 1):
        problems.append({"loc": ["n"], "msg": "this deployment answers with one choice per request: n must be 1", "type": "value_error"})
    for field in ("max_tokens", "max_completion_tokens"):
        asked = getattr(chat, field)
        if asked is not None and asked < max_new_tokens:
            problems.append({"loc": [field], "msg": f"this deployment answers in up to {max_new_tokens} tokens (its generation settings); "
                             f"a smaller {field} ({asked}) cannot be honoured", "type": "value_error"})
    return problems


def chat_request_schema() -> tuple[dict, dict]:
    """(requestBody, component schemas) documenting ChatCompletionRequest, `model` and `messages` required."""
    body = ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = body.pop("$defs", {})
    components[ChatCompletionRequest.__name__] = body
    request = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ChatCompletionRequest.__name__}"}}}}
    return request, components


def _question(chat: ChatCompletionRequest) -> str:
    for message in reversed(chat.messages):
        if message.role == "user":
            content = message.content
            if isinstance(content, list):  # content parts: all text (validated)
                content = " ".join(p.text for p in content)
            return content or ""
    return ""


def add_openai_routes(app, manager, log, metrics, failure) -> None:
    from fastapi.responses import JSONResponse, StreamingResponse

    from llmfti.agents.errors import error_body
    from llmfti.agents.manager import DeploymentUnavailable
    from llmfti.errors import NotFoundError

    @app.get("/v1/models")
    def models():
        """OpenAI's model listing: each active deployment is a model (clients and backends that check
        what a server serves before using it, as llmfti's openai backend does, find them here)."""
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "llmfti", "parent": None} for name in manager.names()]}

    from llmfti.agents.errors import ERROR_RESPONSES

    # The request body is documented by the app's openapi() (chat_request_schema): FastAPI sees `Any`.
    @app.post("/v1/chat/completions", responses=ERROR_RESPONSES)
    def chat_completions(request: Request, body: Any = Body(None)):
        request_id = request.state.request_id
        name = body.get("model") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            return failure(pipeline.RequestInvalid("model: the deployment name is required", [{"loc": ["model"], "msg": "Field required", "type": "missing"}]), request_id)
        try:
            runtime = manager.get(name)
        except (NotFoundError, DeploymentUnavailable) as exc:
            return failure(exc, request_id)
        try:
            chat = ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            err = pipeline.RequestInvalid.from_validation(exc)
            pipeline.log_failure(runtime, body, err, log, metrics, request_id=request_id)
            return failure(err, request_id)
        problems = _unsupported(chat, runtime.config.generation.max_new_tokens)
        if problems:
            err = pipeline.RequestInvalid("; ".join(f"{p['loc'][0]}: {p['msg']}" for p in problems), problems)
            pipeline.log_failure(runtime, body, err, log, metrics, request_id=request_id)
            return failure(err, request_id)
        raw = {"question": _question(chat)}
        created = int(time.time())
        cid = f"chatcmpl-{request_id}"

        def chunk(choices: list, **extra) -> str:
            return f"data: {json.dumps({'id': cid, 'object': 'chat.completion.chunk', 'created': created, 'model': name, 'choices': choices, **extra})}\n\n"

        if chat.stream:
            try:
                prepared = pipeline.prepare_logged(runtime, raw, log=log, metrics=metrics, request_id=request_id)
            except Exception as exc:
                return failure(exc, request_id)
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)

            def events():
                for kind, data in pipeline.stream_prepared(prepared, log=log, metrics=metrics):
                    if kind == "token":
                        yield chunk([{"index": 0, "delta": {"role": "assistant", "content": data}, "finish_reason": None}])
                    elif kind == "error":
                        # OpenAI's error shape, and no final chunk: a failed answer must not look complete.
                        _, err = error_body(data, request_id)
                        yield f"data: {json.dumps({'error': {'message': err['error'], 'type': err['type'], 'request_id': request_id}})}\n\n"
                        return
                    else:  # done: the real finish reason ("length" when cut by max_new_tokens) and counts
                        usage = data["usage"]
                        yield chunk([{"index": 0, "delta": {}, "finish_reason": usage["finish_reason"]}])
                        if include_usage:
                            yield chunk([], usage=_usage(usage))
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        try:
            result = pipeline.invoke(runtime, raw, log=log, metrics=metrics, request_id=request_id)
        except Exception as exc:
            return failure(exc, request_id)
        usage = result["usage"]
        return JSONResponse({
            "id": cid, "object": "chat.completion", "created": created, "model": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result["answer"]}, "finish_reason": usage["finish_reason"]}],
            "usage": _usage(usage),
            "llmfti": {"request_id": result["request_id"], "citations": result["citations"], "versions": result["versions"], "timings_ms": result["timings_ms"]},
        })


def _usage(usage: dict) -> dict:
    return {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
            "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
