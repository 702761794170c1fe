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
        self.warm_up()
        with self._mapped_errors(request):
            for chunk in self._client.chat.completions.create(**self._params(request), stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

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
