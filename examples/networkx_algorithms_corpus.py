"""Write the reference documentation of NetworkX's graph algorithms (the docstrings of every public
function of `networkx.algorithms` that `networkx` exports) as one markdown document per function:
a second real corpus that needs no download and that nobody on this project wrote. NetworkX is
installed wherever llmfti is (torch depends on it).

    python -m examples.networkx_algorithms_corpus build/networkx-corpus

Each document is `NAME.md` (the doc id the eval suite `evals/networkx-algorithms` names):

    # networkx.NAME
    `NAME(signature)`
    Module: networkx.algorithms....
    the docstring, numpydoc section titles ("Parameters" over "----------") as "## Parameters"
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

# numpydoc underlines section titles with dashes; markdown headings let the chunker keep the section
# in each chunk's heading path.
_SECTION = re.compile(r"^(?P<title>[A-Z][A-Za-z ]+)\n-{3,}$", re.M)
# Every dispatchable NetworkX function has these in its signature; they say nothing about the algorithm.
_BACKEND_PARAMS = ("backend", "backend_kwargs")


def functions() -> dict[str, object]:
    """Public functions exported by `networkx` and defined under `networkx.algorithms`, by name."""
    import networkx as nx

    out = {}
    for name in sorted(dir(nx)):
        obj = getattr(nx, name)
        if name.startswith("_") or inspect.isclass(obj) or not callable(obj):
            continue
        module = getattr(obj, "__module__", "") or ""
        if module.startswith("networkx.algorithms") and inspect.getdoc(obj):
            out[name] = obj
    return out


def signature(name: str, obj) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    params = [p for p in sig.parameters.values() if p.name not in _BACKEND_PARAMS]
    return f"{name}{sig.replace(parameters=params)}"


def function_to_markdown(name: str, obj) -> str:
    doc = _SECTION.sub(lambda m: f"## {m.group('title')}", inspect.getdoc(obj))
    return f"# networkx.{name}\n\n`{signature(name, obj)}`\n\nModule: {obj.__module__}\n\n{doc.strip()}\n"


def write_corpus(dest: str | Path) -> list[Path]:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, obj in functions().items():
        path = dest / f"{name}.md"
        content = function_to_markdown(name, obj)
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")  # rewrite only on change: mtimes stay stable
        written.append(path)
    return written


if __name__ == "__main__":
    files = write_corpus(sys.argv[1] if len(sys.argv) > 1 else "build/networkx-corpus")
    print(f"wrote {len(files)} functions", file=sys.stderr)
