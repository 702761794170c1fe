"""OpenAI-compatible `/v1/chat/completions`: model = deployment name, the last user message is the
question. The official `openai` client works unchanged, streaming included. The deployment's own
pipeline runs (retrieval, template, logging): clients still never send the prompt."""

from __future__ import annotations

import json
import time
import uuid

from llmfti.pipelines.inference import online as pipeline


def _question(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def add_openai_routes(app, manager, log, metrics, failure) -> None:
    from fastapi.responses import JSONResponse, StreamingResponse

    from llmfti.errors import NotFoundError

    @app.post("/v1/chat/completions")
    def chat_completions(body: dict):
        name = body.get("model")
        request_id = uuid.uuid4().hex
        try:
            runtime = manager.get(str(name))
        except NotFoundError as exc:
            return failure(exc)
        raw = {"question": _question(body)}
        created = int(time.time())
        cid = f"chatcmpl-{request_id}"
        if body.get("stream"):
            try:
                prepared = pipeline.prepare_logged(runtime, raw, log=log, metrics=metrics, request_id=request_id)
            except Exception as exc:
                return failure(exc, request_id)

            def events():
                for kind, data in pipeline.stream_prepared(prepared, log=log, metrics=metrics):
                    if kind == "token":
                        chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": data}, "finish_reason": None}]}
                        yield f"data: {json.dumps(chunk)}\n\n"
                    elif kind == "error":
                        # OpenAI's error shape, and no "stop" chunk: a failed answer must not look complete.
                        yield f"data: {json.dumps({'error': {'message': data['error'], 'type': data['type']}})}\n\n"
                        return
                end = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                yield f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        try:
            result = pipeline.invoke(runtime, raw, log=log, metrics=metrics, request_id=request_id)
        except Exception as exc:
            return failure(exc, request_id)
        usage = result["usage"]
        return JSONResponse({
            "id": cid, "object": "chat.completion", "created": created, "model": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result["answer"]}, "finish_reason": usage["finish_reason"]}],
            "usage": {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
                      "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
            "llmfti": {"request_id": result["request_id"], "citations": result["citations"], "versions": result["versions"], "timings_ms": result["timings_ms"]},
        })
