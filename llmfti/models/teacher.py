"""A teacher model behind any OpenAI-compatible endpoint (vLLM serving a large model, a hosted API):
chat completions with retries and a timeout, for records synthesis.

    teacher = TeacherClient("http://127.0.0.1:8001/v1", "Qwen2.5-72B-Instruct")
    teacher.chat([{"role": "user", "content": "..."}], seed=0)

Retries (connection errors, 408/409/429/5xx) use the openai client's exponential backoff.
"""

from __future__ import annotations

import os

from llmfti.errors import ConfigError
from llmfti.models.generation import BackendUnavailable, GenerationTimeout


class TeacherClient:
    def __init__(self, base_url: str, model: str, *, api_key_env: str = "LLMFTI_TEACHER_API_KEY", timeout_s: float = 120.0,
                 max_retries: int = 3, temperature: float = 0.2, max_tokens: int = 512):
        if not base_url or not model:
            raise ConfigError("the teacher method needs --teacher-url and --teacher-model")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.api_key = os.environ.get(api_key_env) or "not-needed"
        self.timeout_s, self.max_retries, self.temperature, self.max_tokens = timeout_s, max_retries, temperature, max_tokens
        self._client = None

    def _openai(self):
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=self.max_retries, timeout=self.timeout_s)
        return self._client

    def chat(self, messages: list[dict], *, seed: int | None = None) -> str:
        import openai

        try:
            resp = self._openai().chat.completions.create(model=self.model, messages=messages, temperature=self.temperature,
                                                          max_tokens=self.max_tokens, seed=seed)
        except openai.APITimeoutError as exc:
            raise GenerationTimeout(f"the teacher did not answer within {self.timeout_s:g}s") from exc
        except openai.APIError as exc:
            raise BackendUnavailable(f"the teacher failed after {self.max_retries} retries ({type(exc).__name__})") from exc
        return resp.choices[0].message.content or ""
