"""Clean: unicode and whitespace normalisation, keeping the paragraph and heading structure."""

from __future__ import annotations

import re
import unicodedata

CLEANER_VERSION = "clean-v1"  # bump when the output of clean_text changes: it is part of the chunker fingerprint

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200c\u200d\ufeff]")
_INLINE_SPACE = re.compile(r"[ \t\u00a0]+")
_MANY_BLANK = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """NFKC-normalise, drop control and zero-width characters, unify newlines, collapse runs of
    blanks inside lines and of empty lines. Leading indentation is kept (code blocks, lists)."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = []
    for line in text.split("\n"):
        stripped = line.rstrip()
        indent = len(stripped) - len(stripped.lstrip(" \t"))
        lines.append(stripped[:indent].replace("\t", "    ") + _INLINE_SPACE.sub(" ", stripped[indent:]))
    return _MANY_BLANK.sub("\n\n", "\n".join(lines)).strip("\n")
