"""The online inference pipeline of a deployment (used by the agent service, evals, replay and batch
inference), each stage timed:

    on_demand -> embed_query -> retrieve (at the pinned commit) -> build_prompt (the registry's
    encoder: the same encoding as training) -> generate (with an optional tool loop) -> log

`invoke` returns the answer with citations, versions and per-stage timings; every request, failed
ones included, leaves a row in the inference log with its untransformed input.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from pydantic import ValidationError

from llmfti.errors import LlmftiError
from llmfti.models.generation import GenerationRequest, StreamResult
from llmfti.monitoring.timing import StageTimer
from llmfti.pipelines.inference.retrieval import equality_filter, retrieve
from llmfti.store.retrieval import as_contexts, query_text
from llmfti.sources.timeparse import utcnow
from llmfti.tools import encode_with_tools, get_tool, json_safe_result, parse_tool_call
from llmfti.transforms.on_demand import compute_features

TOOL_CALL_TAG = "<tool_call>"


class RequestInvalid(LlmftiError):
    """The request does not match the deployment's schema (HTTP 422)."""

    exit_code = 2

    def __init__(self, message: str, errors: list | None = None):
        super().__init__(message)
        self.errors = errors or []

    @classmethod
    def from_validation(cls, exc: ValidationError) -> "RequestInvalid":
        """One readable line per pydantic error ('field.sub: message'); a non-object body is 'body'."""
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return cls("; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors), errors)


class ToolBudgetExhausted(LlmftiError):
    """The model still asked for a tool after the deployment's `max_tool_rounds` (HTTP 502): there is
    no answer, and returning the tool-call markup as one would hide that."""

    exit_code = 8


class ResponseUnencodable(LlmftiError):
    """The answer cannot be encoded as JSON (e.g. a NaN score): refused before the log row says ok."""

    exit_code = 1


@dataclass
class Prepared:
    """Everything up to generation, shared by the blocking and the streaming paths."""

    request_id: str
    runtime: object
    raw: dict
    timer: StageTimer
    log_row: dict
    question: str = ""
    features: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    encoded: object = None
    commit: int | None = None
    commit_evaluated: bool | None = None  # whether a passing eval of the gate suites covers the commit read
    query_vector: object = None  # the embedded query, logged for drift monitoring


def _versions(p: Prepared) -> dict:
    rt = p.runtime
    return {
        "deployment": rt.version, "model": rt.config.model, "feature_group": rt.config.feature_group,
        "commit": p.commit, "commit_evaluated": p.commit_evaluated, "prompt_fingerprint": rt.encoder.fingerprint,
    }


def prepare(runtime, raw: dict, request_id: str | None = None, *, features: dict | None = None, commit: int | None = None) -> Prepared:
    """Validate and run every stage up to the prompt. `features`/`commit` replay logged values."""
    p = Prepared(request_id or uuid.uuid4().hex, runtime, raw, StageTimer(), {})
    p.log_row = {"request_id": p.request_id, "deployment": runtime.name, "deployment_version": runtime.version,
                 "model": runtime.config.model, "feature_group": runtime.config.feature_group, "request": loggable_request(raw)}
    try:
        req = runtime.request_model.model_validate(raw)
    except ValidationError as exc:
        raise RequestInvalid.from_validation(exc) from None
    data = req.model_dump()
    config = runtime.config
    with p.timer.stage("on_demand"):
        p.features = dict(features) if features is not None else compute_features(config.on_demand, data, utcnow())
    p.question = data["question"]
    k = config.retrieval.k if data.get("k") is None else data["k"]
    if runtime.tables is not None and k > 0:
        where = equality_filter(data.get("filters"), config.retrieval.filters, runtime.filter_kinds)
        query = query_text(p.question, p.features)
        if commit is not None:  # a replay or an eval pins the commit it reads
            p.commit, p.commit_evaluated = commit, None
        else:
            p.commit, p.commit_evaluated = runtime.choose_commit()
        with p.timer.stage("embed_query"):
            vector = runtime.embedder.embed_query(query)
        p.query_vector = vector
        with p.timer.stage("retrieve"):
            p.rows = retrieve(runtime.tables.at(p.commit), vector, query, k, hybrid=config.retrieval.hybrid, where=where)
    with p.timer.stage("build_prompt"):
        wanted = {f: p.features[f] for f in runtime.encoder.template.features if f in p.features}
        p.encoded = runtime.encoder.encode_prompt(p.question, as_contexts(p.rows), wanted)
    return p


def _request(p: Prepared) -> tuple[list[dict], GenerationRequest]:
    """The chat messages the encoder rendered (for OpenAI-compatible backends) and the generation request."""
    rt = p.runtime
    wanted = {f: p.features[f] for f in rt.encoder.template.features if f in p.features}
    messages = rt.encoder.template.messages(p.question, p.encoded.contexts_used, wanted)
    return messages, GenerationRequest(input_ids=p.encoded.input_ids, messages=messages, settings=rt.config.generation)


def _generate(p: Prepared):
    rt = p.runtime
    config = rt.config
    messages, request = _request(p)
    if not config.tools:
        return rt.generator.generate(request), []
    tools = [get_tool(name) for name in config.tools]
    request.tools = [t.schema() for t in tools]
    request.input_ids = encode_with_tools(rt.encoder, messages, tools)
    calls = []
    # max_tool_rounds tool calls, then one more generation that must answer.
    for round_ in range(config.max_tool_rounds + 1):
        gen = rt.generator.generate(request)
        if TOOL_CALL_TAG not in gen.text:
            return gen, calls
        if round_ == config.max_tool_rounds:
            raise ToolBudgetExhausted(
                f"the model still asked for a tool after {config.max_tool_rounds} tool round(s) (the deployment's max_tool_rounds); "
                "it gave no answer"
            )
        call = parse_tool_call(gen.text)
        if call is None:  # markup the parser cannot read: tell the model, as for any tool error
            name, args = None, {}
            result = 'error: malformed tool call; use <tool_call>{"name": ..., "arguments": {...}}</tool_call>'
        else:
            name, args = call
            try:
                result = get_tool(name).fn(**args) if name in config.tools else f"error: tool {name!r} is not allowed"
            except Exception as exc:  # a tool error is information for the model, not a server failure
                result = f"error: {exc}"
            # Plain JSON from here on: the model reads it and the response carries it, so a NaN or an
            # odd object must not turn a finished (and logged) answer into a serialization failure.
            result = json_safe_result(name, result)
        calls.append({"name": name, "arguments": args, "result": result})
        messages = messages + [{"role": "assistant", "content": gen.text}, {"role": "tool", "name": name or "invalid_tool_call", "content": json.dumps(result)}]
        request = GenerationRequest(input_ids=encode_with_tools(rt.encoder, messages, tools), messages=messages, settings=config.generation, tools=request.tools)
    raise AssertionError("unreachable: the last round returns or raises")


def citations(p: Prepared) -> list[dict]:
    used = {c.chunk_id for c in p.encoded.contexts_used} if p.encoded else set()
    return [{"chunk_id": r["chunk_id"], "doc_id": r.get("doc_id"), "source": r["source"], "score": r["score"], "text": r["text"]} for r in p.rows if r["chunk_id"] in used]


def finish_log(p: Prepared, log, metrics, *, status: str, output: str = "", error: str = "", prompt_tokens: int = 0, completion_tokens: int = 0) -> dict:
    rt = p.runtime
    row = dict(p.log_row)
    row.update(
        commit=p.commit, commit_evaluated=p.commit_evaluated, prompt_mode=rt.model_info.get("prompt_mode"), features=p.features,
        retrieved=[{"chunk_id": r["chunk_id"], "score": r["score"]} for r in p.rows],
        prompt_fingerprint=rt.encoder.fingerprint if p.encoded else None,
        prompt_text=(p.encoded.text if p.encoded and rt.config.log_prompt_text else None),
        output=output, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, status=status, error=error,
        query_vector=p.query_vector, time=utcnow().isoformat(),
    )
    with p.timer.stage("log"):
        row["timings_ms"] = p.timer.as_ms()
        if log is not None:
            log.append(row)
    timings = p.timer.as_ms()
    if metrics is not None:
        metrics.observe(rt.name, timings, status, prompt_tokens, completion_tokens)
    return timings


REJECTED_BODY = "rejected_body"  # the key a body that is not a JSON object is logged under


def loggable_request(raw) -> dict:
    """What the log's `request` column holds: the request object as sent, or, for a body that is not
    a JSON object (a JSON string, a number, text/plain bytes), `{"rejected_body": <its text>}`, so
    every reader (`llmfti logs`, `replay`, monitoring) gets an object and none breaks on one row."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", errors="replace")
    return {REJECTED_BODY: raw if isinstance(raw, (str, int, float, bool, list)) or raw is None else str(raw)}


def log_failure(runtime, raw: dict, exc: Exception, log, metrics, prepared: Prepared | None = None, request_id: str | None = None) -> str:
    """Log a request that failed at any stage; returns its request id."""
    p = prepared or Prepared(request_id or uuid.uuid4().hex, runtime, raw, StageTimer(), {
        "request_id": request_id, "deployment": runtime.name, "deployment_version": runtime.version,
        "model": runtime.config.model, "feature_group": runtime.config.feature_group, "request": loggable_request(raw)})
    p.log_row["request_id"] = p.request_id
    finish_log(p, log, metrics, status=type(exc).__name__, error=str(exc)[:2000])
    if metrics is not None:
        metrics.errors.labels(runtime.name, type(exc).__name__).inc()
    return p.request_id


def invoke(runtime, raw: dict, *, log=None, metrics=None, request_id: str | None = None, features: dict | None = None, commit: int | None = None, return_prompt: bool = False) -> dict:
    """Run the whole pipeline. The rendered prompt is returned only with `return_prompt` (replay):
    client-facing APIs never show prompts."""
    p = None
    try:
        p = prepare(runtime, raw, request_id, features=features, commit=commit)
        with p.timer.stage("generate"):
            gen, calls = _generate(p)
        out = {
            "answer": gen.text, "citations": citations(p), "request_id": p.request_id, "versions": _versions(p), "timings_ms": {},
            "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens, "finish_reason": gen.finish_reason},
        }
        if calls:
            out["tool_calls"] = calls
        _check_encodable(out)  # before the row says ok: the response and its log row must agree
    except Exception as exc:
        log_failure(runtime, raw, exc, log, metrics, p, request_id)
        raise
    out["timings_ms"] = finish_log(p, log, metrics, status="ok", output=gen.text, prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens)
    if return_prompt:
        out["prompt_text"] = p.encoded.text
    return out


def _check_encodable(out: dict) -> None:
    """The JSON encoding responses use (Starlette's: UTF-8, no NaN or infinity) must accept `out`."""
    try:
        json.dumps(out, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError (a lone surrogate) is a ValueError
        raise ResponseUnencodable(f"the response cannot be encoded as JSON: {exc}") from None


def prepare_logged(runtime, raw: dict, *, log=None, metrics=None, request_id: str | None = None) -> Prepared:
    """`prepare`, logging the request as failed when a stage before generation raises. Streaming
    routes call it BEFORE the response starts, so a bad request still gets its status code (422...)."""
    try:
        if runtime.config.tools:
            raise RequestInvalid("streaming is not available for deployments with tools: the tool loop needs whole replies")
        return prepare(runtime, raw, request_id)
    except Exception as exc:
        log_failure(runtime, raw, exc, log, metrics, request_id=request_id)
        raise


def stream_prepared(p: Prepared, *, log=None, metrics=None):
    """Yields ("token", text) events, then ("done", answer + citations + versions + usage + timings),
    or ("error", exception) if generation fails mid-stream (the request is logged either way; the
    caller decides what of the exception a client may see)."""
    runtime = p.runtime
    _, request = _request(p)
    pieces: list[str] = []
    finished = False
    stream = StreamResult(runtime.generator.stream(request))
    try:
        with p.timer.stage("generate"):
            for piece in stream:
                pieces.append(piece)
                yield "token", piece
        finished = True
    except Exception as exc:
        finished = True
        log_failure(runtime, p.raw, exc, log, metrics, p)
        yield "error", exc
        return
    finally:
        if not finished:  # the client disconnected (GeneratorExit): still one log row, with what was sent
            stream.close()  # stops the backend's generation now, not when the generator is collected
            finish_log(p, log, metrics, status="cancelled", output="".join(pieces).strip(), prompt_tokens=len(p.encoded.input_ids))
    gen = stream.generation
    answer = gen.text if gen is not None else "".join(pieces).strip()
    # A backend whose stream returns no Generation: count pieces, and "stop" is all that is known.
    usage = {"prompt_tokens": gen.prompt_tokens if gen else len(p.encoded.input_ids),
             "completion_tokens": gen.completion_tokens if gen else len(pieces),
             "finish_reason": gen.finish_reason if gen else "stop"}
    timings = finish_log(p, log, metrics, status="ok", output=answer, prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"])
    yield "done", {"answer": answer, "citations": citations(p), "request_id": p.request_id, "versions": _versions(p), "usage": usage, "timings_ms": timings}
