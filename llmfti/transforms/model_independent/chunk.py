"""Chunk: token-aware splitting with the embedder's tokenizer.

The built-in `structured` chunker splits on headings first (a chunk never spans two sections and
keeps its heading path), then packs paragraphs, then sentences, and only cuts hard inside a single
over-long sentence. Overlap repeats whole trailing paragraphs/sentences (up to `overlap` tokens) so
that chunk boundaries stay on natural boundaries.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Callable, Protocol

from llmfti.config.features import ChunkerConfig
from llmfti.transforms.model_independent.clean import CLEANER_VERSION
from llmfti.transforms.registry import register_chunker

STRUCTURED_CHUNKER_VERSION = "structured-v1"

TokenOffsets = Callable[[str], list[tuple[int, int]]]
"""Maps a text to the (start, end) character offsets of its tokens, without special tokens."""


@dataclass
class Chunk:
    text: str
    heading_path: list[str] = field(default_factory=list)
    index: int = 0
    token_count: int = 0

    @property
    def embed_text(self) -> str:
        """What is embedded: the heading path gives a chunk the context its section title carries."""
        if not self.heading_path:
            return self.text
        return " > ".join(self.heading_path) + "\n\n" + self.text


class Chunker(Protocol):
    fingerprint: str

    def chunk(self, text: str) -> list[Chunk]: ...


def chunker_fingerprint(config: ChunkerConfig, tokenizer_fingerprint: str, code_version: str) -> str:
    payload = json.dumps(
        {"config": config.model_dump(), "cleaner": CLEANER_VERSION, "code": code_version, "tokenizer": tokenizer_fingerprint},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=\S)")


@dataclass
class _Unit:
    text: str
    tokens: int
    sep: str  # separator placed before this unit when it is not first in a chunk


def split_sections(text: str) -> list[tuple[list[str], str]]:
    """Split markdown-ish text into (heading path, body) sections; fenced code never holds headings."""
    sections: list[tuple[list[str], list[str]]] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False

    def flush():
        if any(line.strip() for line in body):
            sections.append(([title for _, title in path], list(body)))
        body.clear()

    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, match.group(2))]
        else:
            body.append(line)
    flush()
    return [(p, "\n".join(b).strip("\n")) for p, b in sections]


def split_paragraphs(body: str) -> list[str]:
    """Blank lines separate paragraphs, except inside fenced code blocks."""
    paragraphs, current, in_fence = [], [], False
    for line in body.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        if not line.strip() and not in_fence:
            if current:
                paragraphs.append("\n".join(current))
                current = []
        else:
            current.append(line)
    if current:
        paragraphs.append("\n".join(current))
    return paragraphs


class StructuredChunker:
    """Headings > paragraphs > sentences > hard token cuts, packed up to `chunk_tokens`."""

    def __init__(self, config: ChunkerConfig, token_offsets: TokenOffsets, tokenizer_fingerprint: str):
        self.config = config
        self._offsets = token_offsets
        self.fingerprint = chunker_fingerprint(config, tokenizer_fingerprint, STRUCTURED_CHUNKER_VERSION)

    def _count(self, text: str) -> int:
        return len(self._offsets(text))

    def _units(self, paragraph: str) -> list[_Unit]:
        limit = self.config.chunk_tokens
        n = self._count(paragraph)
        if n <= limit:
            return [_Unit(paragraph, n, "\n\n")]
        units: list[_Unit] = []
        for i, sentence in enumerate(_SENTENCE_END.split(paragraph)):
            sep = "\n\n" if i == 0 else " "
            m = self._count(sentence)
            if m <= limit:
                units.append(_Unit(sentence, m, sep))
            else:
                units.extend(self._hard_cut(sentence, sep))
        return units

    def _hard_cut(self, text: str, sep: str) -> list[_Unit]:
        """Cut at token offsets; consecutive pieces overlap by `overlap` tokens."""
        offsets = self._offsets(text)
        limit, step = self.config.chunk_tokens, self.config.chunk_tokens - self.config.overlap
        pieces = []
        for start in range(0, len(offsets), step):
            window = offsets[start : start + limit]
            pieces.append(_Unit(text[window[0][0] : window[-1][1]], len(window), sep if start == 0 else " "))
            if start + limit >= len(offsets):
                break
        return pieces

    def _pack(self, units: list[_Unit]) -> list[tuple[str, int]]:
        limit, overlap = self.config.chunk_tokens, self.config.overlap
        chunks: list[tuple[str, int]] = []
        current: list[_Unit] = []

        def emit():
            text = current[0].text + "".join(u.sep + u.text for u in current[1:])
            chunks.append((text, sum(u.tokens for u in current)))

        for unit in units:
            if current and sum(u.tokens for u in current) + unit.tokens > limit:
                emit()
                carried: list[_Unit] = []
                for prev in reversed(current):
                    if sum(u.tokens for u in carried) + prev.tokens > overlap:
                        break
                    carried.insert(0, prev)
                while carried and sum(u.tokens for u in carried) + unit.tokens > limit:
                    carried.pop(0)
                current = carried
            current.append(unit)
        if current:
            emit()
        return chunks

    def chunk(self, text: str) -> list[Chunk]:
        out: list[Chunk] = []
        for path, body in split_sections(text):
            units = [u for p in split_paragraphs(body) for u in self._units(p)]
            for chunk_text, tokens in self._pack(units):
                out.append(Chunk(chunk_text, path, len(out), tokens))
        return out


@register_chunker("structured")
def make_structured_chunker(config: ChunkerConfig, token_offsets: TokenOffsets, tokenizer_fingerprint: str):
    return StructuredChunker(config, token_offsets, tokenizer_fingerprint)
