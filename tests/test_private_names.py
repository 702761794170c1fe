"""No module imports another module's private (`_name`) names (issue 30): a responsibility that two
modules share lives in one public place. An AST scan of the library, the pipelines and the agents."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def private_imports(paths) -> list[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("llmfti"):
                found += [f"{path.relative_to(REPO)}:{node.lineno} {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_module_imports_a_private_name_of_another():
    paths = [p for folder in ("llmfti", "pipelines", "agents") for p in (REPO / folder).rglob("*.py")]
    assert len(paths) > 100
    assert private_imports(paths) == []


def test_the_scan_finds_one():
    inside = REPO / "llmfti" / "_private_scan_probe.py"  # under the repo: paths are reported relative to it
    inside.write_text("def f():\n    from llmfti.pipelines.feature import _secret\n")
    try:
        assert private_imports([inside]) == ["llmfti/_private_scan_probe.py:2 llmfti.pipelines.feature._secret"]
    finally:
        inside.unlink()
