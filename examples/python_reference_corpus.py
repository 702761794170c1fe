"""Write the Python language reference that ships with CPython (`pydoc_data.topics`) as one
markdown document per topic: a real corpus that needs no download.

    python -m examples.python_reference_corpus build/corpus
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# pydoc's topics are reST-rendered text: titles underlined with *, =, - (in that order of depth).
_UNDERLINE = {"*": "#", "=": "##", "-": "###", "~": "####"}


def topic_to_markdown(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        ch = nxt[:1]
        if lines[i].strip() and ch in _UNDERLINE and re.fullmatch(re.escape(ch) + "{3,}", nxt.strip()) and len(nxt.strip()) >= len(lines[i].strip()):
            out.append(f"{_UNDERLINE[ch]} {lines[i].strip()}")
            i += 2
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def write_corpus(dest: str | Path) -> list[Path]:
    from pydoc_data.topics import topics

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(topics.items()):
        path = dest / f"{name}.md"
        content = topic_to_markdown(text).strip() + "\n"
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")  # rewrite only on change: mtimes stay stable
        written.append(path)
    return written


if __name__ == "__main__":
    files = write_corpus(sys.argv[1] if len(sys.argv) > 1 else "build/corpus")
    print(f"wrote {len(files)} topics", file=sys.stderr)
