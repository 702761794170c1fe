"""Tools an agent may call: registered Python functions with a JSON-schema description. Core, so the
inference pipeline (tool loop) and deploy-time checks use the same registry; the built-in calculator
registers like an extension.

    @register_tool("add", "Add two integers", {"a": {"type": "integer"}, "b": {"type": "integer"}})
    def add(a: int, b: int) -> int:
        return a + b

A model asks for a tool by emitting `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (the
Hermes/Qwen convention that tool-aware chat templates teach); the loop runs it, appends the result as
a `tool` message and generates again, up to the deployment's `max_tool_rounds`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Callable

from llmfti.plugins import Registry


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict
    fn: Callable

    def schema(self) -> dict:
        props = self.parameters
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": {"type": "object", "properties": props, "required": sorted(props)}}}


TOOLS: Registry = Registry("tool")
get_tool = TOOLS.get


def register_tool(name: str, description: str, parameters: dict):
    """Decorator: register `fn` as tool `name` with a JSON-schema `parameters` object."""

    def decorate(fn: Callable) -> Callable:
        TOOLS.add(name, Tool(name, description, parameters, fn))
        return fn

    return decorate


_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)


def parse_tool_call(text: str) -> tuple[str, dict] | None:
    match = _CALL.search(text)
    if not match:
        return None
    try:
        call = json.loads(match.group(1))
        return str(call["name"]), dict(call.get("arguments") or {})
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def encode_with_tools(encoder, messages: list[dict], tools: list[Tool]) -> list[int]:
    """The prompt ids for a conversation with tool turns: the prompt encoder's own path (chat template,
    budget, untrusted text never special tokens, covered by its fingerprint)."""
    return encoder.encode_messages(messages, tools=[t.schema() for t in tools]).input_ids


@register_tool("calculator", "Evaluate an arithmetic expression with + - * / and parentheses.", {"expression": {"type": "string"}})
def calculator(expression: str) -> float:
    """+ - * / on numbers, walked over the AST (no eval, no **: a model cannot make it compute forever)."""
    import ast
    import operator

    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}

    def walk(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and abs(node.value) < 1e15:
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -walk(node.operand) if isinstance(node.op, ast.USub) else walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            value = ops[type(node.op)](walk(node.left), walk(node.right))
            # Float overflow gives inf (then nan) instead of raising: JSON has neither, and "inf" is
            # no answer. Refused at the step that overflows, so the model learns which part failed.
            if not math.isfinite(value):
                raise ValueError("the result is not a finite number (overflow)")
            return value
        raise ValueError("only numbers, + - * / and parentheses are allowed")

    if len(expression) > 200:
        raise ValueError("expression too long")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise ValueError("not an arithmetic expression") from None
    return walk(tree.body)


def json_safe_result(name: str, result):
    """A tool's result as plain JSON data (what the model reads and the response carries). Unknown
    objects become strings; NaN or infinity, which JSON cannot carry, become an error for the model."""
    try:
        return json.loads(json.dumps(result, default=str, allow_nan=False))
    except ValueError:
        return f"error: tool {name!r} returned a value that is not a finite number"
