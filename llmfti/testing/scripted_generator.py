"""A scripted generator: replies from a list (cycled) or a function of the request. Deterministic,
instant, no weights; use it to test agents, tool loops and services.

    gen = ScriptedGenerator(["first reply", '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'])
    gen = ScriptedGenerator(lambda request: f"echo: {request.messages[-1]['content']}")
"""

from __future__ import annotations

import time
from typing import Callable

from llmfti.models.generation import Generation, GenerationRequest, GenerationTimeout, Generator


class ScriptedGenerator(Generator):
    name = "scripted"

    def __init__(self, replies: list[str] | Callable[[GenerationRequest], str], delay_s: float = 0.0):
        self.replies = replies
        self.delay_s = delay_s
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest) -> Generation:
        self.requests.append(request)
        if self.delay_s:
            if self.delay_s > request.settings.timeout_s:
                time.sleep(request.settings.timeout_s)
                raise GenerationTimeout(f"generation did not finish within {request.settings.timeout_s:g}s")
            time.sleep(self.delay_s)
        if callable(self.replies):
            text = self.replies(request)
        else:
            text = self.replies[(len(self.requests) - 1) % len(self.replies)]
        return Generation(text=text, prompt_tokens=len(request.input_ids), completion_tokens=len(text.split()), finish_reason="stop")

    def stream(self, request: GenerationRequest):
        text = self.generate(request).text
        for i, word in enumerate(text.split(" ")):
            yield word if i == 0 else " " + word
