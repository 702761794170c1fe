"""Format readers: bytes of one file -> (text, metadata). Markup is reduced to text, with headings
kept as markdown `#` lines so the chunker can follow the document's structure."""

from __future__ import annotations

import functools
import io
import re
from html.parser import HTMLParser


class UnparseableError(ValueError):
    """The file is of a known type but could not be parsed."""


_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)


@functools.lru_cache(maxsize=1)
def _no_alias_loader():
    """A SafeLoader that refuses YAML aliases: each `*alias` re-uses a whole node, so a few hundred
    bytes of nested aliases ("billion laughs") expand to gigabytes once the metadata is stringified."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise UnparseableError(f"front matter uses a YAML alias (line {mark.line + 1}); aliases are not allowed")
            return super().compose_node(parent, index)

    return NoAliasLoader


def split_front_matter(text: str) -> tuple[str, dict]:
    """Markdown YAML front matter (`---` ... `---`) becomes metadata (e.g. `date:` -> event time).
    YAML aliases are refused (UnparseableError), see `_no_alias_loader`."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, {}
    import yaml

    try:
        meta = yaml.load(match.group(1), Loader=_no_alias_loader()) or {}
    except yaml.YAMLError as exc:
        raise UnparseableError(f"invalid front matter: {exc}") from exc
    except RecursionError:  # the composer recurses per nesting level: `[[[[...` thousands deep
        raise UnparseableError("invalid front matter: nested too deeply") from None
    if not isinstance(meta, dict):
        raise UnparseableError("front matter is not a mapping")
    return text[match.end():], meta


_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+<>:.])\1{2,}\s*$")


def rst_to_markdown(text: str) -> str:
    """Turn reStructuredText section titles (title over an underline) into markdown headings; the
    heading level follows the order in which underline characters first appear, as in docutils."""
    lines = text.split("\n")
    levels: dict[str, int] = {}
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _RST_UNDERLINE.match(nxt) and len(nxt.strip()) >= len(line.strip()) and not _RST_UNDERLINE.match(line):
            level = levels.setdefault(nxt.strip()[0], min(len(levels) + 1, 6))
            out.append("#" * level + " " + line.strip())
            i += 2
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class _HtmlText(HTMLParser):
    _BLOCK = {"p", "div", "li", "ul", "ol", "table", "tr", "section", "article", "pre", "blockquote", "br", "hr"}
    _SKIP = {"script", "style", "noscript", "template", "svg"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.meta: dict = {}
        self._skip = 0
        self._in_title = False
        self.title = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self._SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "meta" and attrs.get("name") and attrs.get("content"):
            self.meta[attrs["name"].lower()] = attrs["content"]
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag) or tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self._skip:
            return
        if self._in_title:
            self.title += data
            return
        # inside headings keep everything on the heading's line
        self.parts.append(re.sub(r"\s+", " ", data) if self.parts and self.parts[-1].lstrip("\n").startswith("#") else data)


def html_to_text(raw: str) -> tuple[str, dict]:
    parser = _HtmlText()
    try:
        parser.feed(raw)
        parser.close()
    except Exception as exc:  # html.parser is lenient; this is for truly broken input
        raise UnparseableError(f"HTML parse error: {exc}") from exc
    meta = dict(parser.meta)
    if parser.title.strip():
        meta.setdefault("title", parser.title.strip())
    text = "".join(parser.parts)
    text = re.sub(r"[ \t]*\n[ \t]*", "\n", text)
    return text, meta


def pdf_to_text(data: bytes) -> tuple[str, dict]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata or {}
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnparseableError(f"PDF parse error: {exc}") from exc
    meta = {}
    created = getattr(info, "creation_date", None) if info else None
    if created is not None:
        meta["date"] = created.isoformat()
    if info and getattr(info, "title", None):
        meta["title"] = info.title
    meta["pages"] = len(pages)
    return "\n\n".join(pages), meta
