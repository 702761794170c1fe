"""Generation through any OpenAI-compatible server, primarily vLLM.

    vllm serve BASE --enable-lora --lora-modules NAME=PATH      # then model = NAME

Prompt modes: `token_ids` (default) sends the prompt encoder's exact ids to `/v1/completions` (vLLM
takes token-id prompts), so the server runs precisely what was fingerprinted, trained on and logged;
`chat` sends the rendered messages to `/v1/chat/completions` for servers that cannot take ids (the
server then applies its own chat template: the fingerprint describes what we built, not what ran).

A fine-tuned model version maps to its LoRA module name (`model` in the deployment's backend
settings). `check_serves` asks `/v1/models` at build time: a version with an adapter must be served
as a LoRA module (vLLM lists those with a `parent`), never as the bare base model, where the adapter
would be silently ignored.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from llmfti.errors import ConfigError
from llmfti.models.generation import BackendUnavailable, Generation, GenerationRequest, GenerationTimeout, Generator


class OpenAIGenerator(Generator):
    name = "openai"

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, prompt_mode: str = "token_ids"):
        if prompt_mode not in ("token_ids", "chat"):
            raise ConfigError(f"prompt_mode must be token_ids or chat, not {prompt_mode!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.prompt_mode = prompt_mode
        self.api_key = (os.environ.get(api_key_env) if api_key_env else None) or "not-needed"
        self._client = None

    def warm_up(self) -> None:
        if self._client is None:
            try:
                from openai import OpenAI
            except ImportError as exc:
                raise ConfigError("the openai backend needs the openai package: pip install 'llmfti[vllm]'") from exc
            self._client = OpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0)

    def _params(self, request: GenerationRequest) -> dict:
        s = request.settings
        params = dict(model=self.model, max_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, timeout=s.timeout_s)
        if self.prompt_mode == "token_ids":
            params["prompt"] = list(request.input_ids)  # the tool loop's turns are already in these ids
            return params
        params["messages"] = request.messages
        if request.tools:
            params["tools"] = request.tools
        return params

    def _create(self, **params):
        api = self._client.completions if self.prompt_mode == "token_ids" else self._client.chat.completions
        return api.create(**params)

    def generate(self, request: GenerationRequest) -> Generation:
        self.warm_up()
        with self._mapped_errors(request):
            resp = self._create(**self._params(request))
        choice = resp.choices[0]
        usage = resp.usage
        text = choice.text if self.prompt_mode == "token_ids" else choice.message.content
        return Generation(
            text=(text or "").strip(),
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            finish_reason=choice.finish_reason or "stop",
        )

    def served_models(self) -> list[dict]:
        """`/v1/models`: [{"id": ..., "parent": base id for a LoRA module, else None}]."""
        self.warm_up()
        import openai

        try:
            listing = self._client.models.list()
        except openai.APIError as exc:
            raise BackendUnavailable(f"OpenAI-compatible server {self.base_url}: /models failed ({type(exc).__name__})") from exc
        return [{"id": m.id, "parent": (getattr(m, "model_extra", None) or {}).get("parent") or getattr(m, "parent", None)} for m in listing.data]

    def check_serves(self, *, adapter: bool) -> dict:
        """Refuse to serve when the server does not serve `model`, or serves it as a base model while the
        model version has a LoRA adapter (the adapter would be ignored without an error)."""
        from llmfti.errors import IncompatibleError

        served = {m["id"]: m for m in self.served_models()}
        entry = served.get(self.model)
        if entry is None:
            raise IncompatibleError(f"{self.base_url} does not serve {self.model!r} (it serves: {', '.join(sorted(served)) or 'nothing'})",
                                    hint="vllm serve BASE --enable-lora --lora-modules NAME=ADAPTER_PATH, then backend.model: NAME")
        if adapter and not entry.get("parent"):
            raise IncompatibleError(f"{self.base_url} serves {self.model!r} as a base model, but the model version has a LoRA adapter: "
                                    "its answers would ignore the adapter",
                                    hint="serve the adapter with --enable-lora --lora-modules NAME=ADAPTER_PATH and set backend.model: NAME")
        return entry

    def stream(self, request: GenerationRequest):
        """Text pieces from the server's stream; returns a `Generation` with the server's finish reason
        and usage (asked for with `stream_options.include_usage`; counted locally if not sent)."""
        self.warm_up()
        pieces: list[str] = []
        finish, usage = None, None
        with self._mapped_errors(request):
            chunks = self._create(**self._params(request), stream=True, stream_options={"include_usage": True})
            for chunk in chunks:
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage  # the extra last chunk (no choices) of include_usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
                    finish = choice.finish_reason
                piece = choice.text if self.prompt_mode == "token_ids" else choice.delta.content
                if piece:
                    pieces.append(piece)
                    yield piece
        return Generation(
            text="".join(pieces).strip(),
            prompt_tokens=(getattr(usage, "prompt_tokens", None) or len(request.input_ids)),
            completion_tokens=(getattr(usage, "completion_tokens", None) or len(pieces)),
            finish_reason=finish or "stop",
        )

    @contextmanager
    def _mapped_errors(self, request: GenerationRequest):
        """Server-side failures are ours to report (502/504), never the client's (422)."""
        import openai

        try:
            yield
        except openai.APITimeoutError as exc:
            raise GenerationTimeout(f"{self.base_url} did not answer within {request.settings.timeout_s:g}s") from exc
        except openai.APIError as exc:
            raise BackendUnavailable(f"OpenAI-compatible server {self.base_url} failed: {exc}") from exc
