"""Deployment config: the tuple a deployment couples, and the typed request clients send.

`configs/deployments/NAME.yaml`, validated here; `llmfti deploy CONFIG` checks the tuple and records
a new deployment version. Clients never send prompts: they send the request schema below.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from llmfti.config.base import StrictModel
from llmfti.config.generation import GenerationSettings

RESERVED_FIELDS = {"k", "filters", "stream"}
BACKEND_KEY_PREFIX = "LLMFTI_BACKEND_"
# Secrets of the service itself: never sent to a generation backend, whatever a config says.
SERVICE_SECRETS = frozenset({"LLMFTI_API_KEYS", "LLMFTI_API_KEYS_FILE", "LLMFTI_API_KEY", "LLMFTI_JUDGE_API_KEY"})


class RequestField(StrictModel):
    type: Literal["string", "integer", "number", "boolean"] = Field("string", description="JSON type of the field.")
    description: str = Field("", description="Shown in the OpenAPI docs.")
    required: bool = Field(False, description="Whether clients must send it.")
    default: str | int | float | bool | None = Field(None, description="Value when omitted.")
    max_length: int | None = Field(None, ge=1, description="Maximum string length (422 beyond).")
    min_length: int | None = Field(None, ge=0, description="Minimum string length.")
    enum: list[str] | None = Field(None, description="Allowed string values.")


def _default_fields() -> dict[str, RequestField]:
    return {"question": RequestField(type="string", required=True, min_length=1, max_length=2000, description="The user's question.")}


class RequestSchema(StrictModel):
    """The typed request of a deployment, published in OpenAPI. `question` is required."""

    fields: dict[str, RequestField] = Field(default_factory=_default_fields, description="Field name -> spec.")

    @model_validator(mode="after")
    def _has_question(self):
        q = self.fields.get("question")
        if q is None or q.type != "string" or not q.required:
            raise ValueError("the request schema needs a required string field 'question'")
        for name in self.fields:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name in RESERVED_FIELDS:
                raise ValueError(f"invalid request field name {name!r} (reserved: {sorted(RESERVED_FIELDS)})")
        return self


class RetrievalSettings(StrictModel):
    k: int = Field(4, ge=0, le=100, description="Contexts retrieved by default (0 = no retrieval).")
    max_k: int = Field(10, ge=1, le=100, description="Largest k a client may ask for (422 beyond).")
    hybrid: bool = Field(False, description="Vector search re-ordered by full-text matches (llmfti.store.fusion): for questions that quote exact tokens.")
    filters: list[str] = Field(default_factory=list, description="Columns clients may filter on with equality (e.g. doc_id).")

    @model_validator(mode="after")
    def _k_within_max(self):
        if self.k > self.max_k:
            raise ValueError(f"k ({self.k}) must not exceed max_k ({self.max_k})")
        return self


class BackendSettings(StrictModel):
    kind: Literal["transformers", "openai"] = Field("transformers", description="In-process transformers, or an OpenAI-compatible server (vLLM).")
    device: str = Field("auto", description="transformers: 'auto', 'cpu', 'cuda'.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="transformers: weights dtype.")
    quantize: Literal["none", "int8", "int4"] = Field(
        "none", description="transformers on CPU: 'int8' (per channel) or 'int4' (groups of 32, like llama.cpp's Q4_1) weight copies used "
        "for decoding; prefill keeps the original weights. Decode on a CPU is bound by memory bandwidth, so it runs faster; greedy "
        "outputs may differ where two tokens are nearly tied (more so with int4).")
    decode: Literal["torch", "llama_cpp"] = Field(
        "torch", description="transformers on CPU: 'llama_cpp' continues a single greedy request in llama.cpp from the prompt "
        "transformers prefilled (its keys and values are handed over), with the model version's GGUF: about 2x the decode speed, "
        "the same prompt ids. Needs llama-cpp-python (pip install 'llmfti[llama-cpp]', built with CMAKE_ARGS=-DGGML_OPENMP=OFF) and a model "
        "version imported from a GGUF (the embedded default is one) or a LoRA version of one; batches and sampling stay on torch.")
    max_batch_size: int = Field(8, ge=1, le=256, description="transformers: requests generated together.")
    batch_window_ms: float = Field(10.0, ge=0, le=1000, description="transformers: how long a request waits for batch mates.")
    base_url: str | None = Field(None, description="openai: server URL ending in /v1, e.g. http://127.0.0.1:8001/v1.")
    model: str | None = Field(None, description="openai: served model name (for vLLM LoRA: the --lora-modules NAME).")
    api_key_env: str | None = Field(None, description=f"openai: environment variable holding the backend's API key; must start with {BACKEND_KEY_PREFIX}.")
    prompt_mode: Literal["token_ids", "chat"] | None = Field(
        None, description="openai: 'token_ids' (default) sends the encoder's exact prompt ids to /v1/completions (vLLM accepts them), so "
        "the server runs what was fingerprinted and trained on; 'chat' sends messages for servers that cannot take ids (they apply "
        "their own chat template).")

    @property
    def effective_prompt_mode(self) -> str:
        """What reaches the model: 'local' (in-process ids), 'token_ids' or 'chat'."""
        return "local" if self.kind == "transformers" else (self.prompt_mode or "token_ids")

    @field_validator("api_key_env")
    @classmethod
    def _backend_key_only(cls, v: str | None) -> str | None:
        # The key is sent to base_url: a free choice of variable would let a deployment config send the
        # service's own secrets (its client API keys) to any server. Backend keys get their own names.
        if v is None:
            return v
        if v in SERVICE_SECRETS or not re.fullmatch(rf"{BACKEND_KEY_PREFIX}[A-Z0-9_]+", v):
            raise ValueError(
                f"api_key_env {v!r} is not allowed: name a variable that holds only this backend's key and starts with "
                f"{BACKEND_KEY_PREFIX} (e.g. {BACKEND_KEY_PREFIX}VLLM_KEY); the service's own secrets ({', '.join(sorted(SERVICE_SECRETS))}) are never sent to a backend"
            )
        return v

    @model_validator(mode="after")
    def _openai_needs_url(self):
        if self.kind == "openai" and (not self.base_url or not self.model):
            raise ValueError("backend kind 'openai' needs base_url and model")
        return self


class DeploymentConfig(StrictModel):
    """One deployment: model version + feature group version (+ commit policy) + template + settings."""

    name: str = Field(description="Deployment name, used in URLs: /v1/deployments/NAME/invoke.")
    description: str = Field("", description="Free text.")
    model: str = Field(description="Model version NAME:VERSION (a base model or a fine-tuned one).")
    feature_group: str | None = Field(None, description="Feature group NAME:VERSION to retrieve from; none for a plain chat model.")
    commit: str | int = Field("latest", description="Feature-group commit: a number, a tag, or 'latest' (follow new commits).")
    prompt_template: str | None = Field(None, description="Prompt template name; default: the model version's own. Must match its fingerprint.")
    max_prompt_tokens: int | None = Field(None, ge=16, description="Prompt budget; default: the model version's own.")
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    on_demand: list[str] = Field(default_factory=list, description="Registered on-demand transformations computed per request.")
    tools: list[str] = Field(default_factory=list, description="Registered tools the model may call (chat templates with tool support).")
    max_tool_rounds: int = Field(3, ge=1, le=10, description="Tool-call iterations before answering.")
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    backend: BackendSettings = Field(default_factory=BackendSettings)
    request_schema: RequestSchema = Field(default_factory=RequestSchema)
    log_prompt_text: bool = Field(True, description="Store the rendered prompt in the inference log (disable for sensitive data).")
    gate_suites: list[str] = Field(
        default_factory=list,
        description="Eval suites (names under evals/, or folders) whose passing eval of this exact tuple is needed to promote it "
        "and, under `commit: latest`, to serve a new commit. None named: promotion needs --force --reason.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", v):
            raise ValueError("use letters, digits, '_', '-', '.' (max 63)")
        return v

    @model_validator(mode="after")
    def _retrieval_needs_feature_group(self):
        if self.feature_group is None and self.retrieval.k > 0:
            raise ValueError("retrieval.k > 0 needs a feature_group (or set retrieval.k: 0)")
        if isinstance(self.commit, str) and self.commit != "latest" and not self.commit:
            raise ValueError("commit must be a number, a tag or 'latest'")
        return self


def request_model(config: DeploymentConfig):
    """A pydantic model of the deployment's request (plus k and filters), for validation and OpenAPI."""
    from typing import Optional

    from pydantic import create_model

    py = {"string": str, "integer": int, "number": float, "boolean": bool}
    fields = {}
    for name, spec in config.request_schema.fields.items():
        kw = {"description": spec.description}
        if spec.type == "string":
            kw.update(max_length=spec.max_length, min_length=spec.min_length)
        typ = py[spec.type]
        if spec.enum:
            typ = Literal[tuple(spec.enum)]  # type: ignore[misc]
        if spec.required:
            fields[name] = (typ, Field(..., **kw))
        else:
            fields[name] = (Optional[typ], Field(spec.default, **kw))
    r = config.retrieval
    # {"k": false} was taken as k=0 (a bool is an int to Python); JSON Schema's integer is 4 or 4.0, never false or "4".
    k_type = Annotated[int, Field(ge=0, le=r.max_k), BeforeValidator(_json_integer)]  # this order: the schema shows the bounds
    fields["k"] = (Optional[k_type], Field(None, description=f"Contexts to retrieve (default {r.k}, max {r.max_k})."))
    if r.filters:
        # The schema names the filterable columns (propertyNames); the pipeline's check says which are allowed.
        fields["filters"] = (Optional[dict[str, str]], Field(None, description=f"Equality filters on: {', '.join(r.filters)}.",
                                                             json_schema_extra={"propertyNames": {"enum": list(r.filters)}}))
    model = create_model(f"{_camel(config.name)}Request", __config__={"extra": "forbid"}, **fields)
    return model


def _json_integer(value):
    """What JSON Schema calls an integer: a number with no fraction; booleans and strings are not."""
    if isinstance(value, (bool, str)):
        raise ValueError("must be an integer")
    return value


def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]", name) if p) or "Deployment"


def filterable_columns(schema) -> dict[str, str]:
    """Columns of a feature-group table (a pyarrow schema) that `retrieval.filters` may name, with the
    kind of value a client's filter string is converted to: 'string', 'integer' or 'boolean'. Vectors,
    lists and timestamps are not equality-filterable from a string."""
    import pyarrow as pa

    kinds = {}
    for f in schema:
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            kinds[f.name] = "string"
        elif pa.types.is_integer(f.type):
            kinds[f.name] = "integer"
        elif pa.types.is_boolean(f.type):
            kinds[f.name] = "boolean"
    return kinds
