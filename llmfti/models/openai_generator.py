"""Generation through any OpenAI-compatible server, primarily vLLM.

    vllm serve BASE --enable-lora --lora-modules NAME=PATH      # then model = NAME

A fine-tuned model version maps to its LoRA module name (`model` in the deployment's backend
settings). The server applies its own chat template to the messages, so the local encoder's
fingerprint describes the prompt we built, and the deployment records which server served it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from llmfti.errors import ConfigError
from llmfti.models.generation import BackendUnavailable, Generation, GenerationRequest, GenerationTimeout, Generator


class OpenAIGenerator(Generator):
    name = "openai"

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.model = model
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
        params = dict(model=self.model, messages=request.messages, max_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, timeout=s.timeout_s)
        if request.tools:
            params["tools"] = request.tools
        return params

    def generate(self, request: GenerationRequest) -> Generation:
        self.warm_up()
        with self._mapped_errors(request):
            resp = self._client.chat.completions.create(**self._params(request))
        choice = resp.choices[0]
        usage = resp.usage
        return Generation(
            text=(choice.message.content or "").strip(),
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            finish_reason=choice.finish_reason or "stop",
        )

    def stream(self, request: GenerationRequest):
        """Text pieces from the server's stream; returns a `Generation` with the server's finish reason
        and usage (asked for with `stream_options.include_usage`; counted locally if not sent)."""
        self.warm_up()
        pieces: list[str] = []
        finish, usage = None, None
        with self._mapped_errors(request):
            chunks = self._client.chat.completions.create(**self._params(request), stream=True, stream_options={"include_usage": True})
            for chunk in chunks:
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage  # the extra last chunk (no choices) of include_usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
                    finish = choice.finish_reason
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                    yield choice.delta.content
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
