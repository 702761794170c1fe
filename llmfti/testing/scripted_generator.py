"""A scripted generator: replies from a list (cycled) or a function of the request. Deterministic,
instant, no weights; use it to test agents, tool loops and services.

    gen = ScriptedGenerator(["first reply", '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'])
    gen = ScriptedGenerator(lambda request: f"echo: {request.messages[-1]['content']}")

A "token" is a whitespace-separated word: a reply longer than `settings.max_new_tokens` words is cut
there and ends with finish_reason "length", as a real model cut by its token limit does.
"""

from __future__ import annotations

import re
import time
from typing import Callable

from llmfti.models.generation import Generation, GenerationRequest, GenerationTimeout, Generator

_WORD = re.compile(r"\s*\S+")  # a word with the whitespace before it: joined pieces give the text back


class ScriptedGenerator(Generator):
    name = "scripted"

    def __init__(self, replies: list[str] | Callable[[GenerationRequest], str], delay_s: float = 0.0):
        self.replies = replies
        self.delay_s = delay_s
        self.requests: list[GenerationRequest] = []

    def _reply(self, request: GenerationRequest) -> tuple[list[str], Generation]:
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
        words = _WORD.findall(text)
        limit = request.settings.max_new_tokens
        finish = "length" if len(words) > limit else "stop"
        words = words[:limit]
        gen = Generation(text="".join(words).strip(), prompt_tokens=len(request.input_ids), completion_tokens=len(words), finish_reason=finish)
        return words, gen

    def generate(self, request: GenerationRequest) -> Generation:
        return self._reply(request)[1]

    def stream(self, request: GenerationRequest):
        words, gen = self._reply(request)
        for i, word in enumerate(words):
            yield word.lstrip() if i == 0 else word
        return gen
