"""Output helpers: exactly one JSON document on stdout with --json, rich text otherwise; errors on stderr."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any, Callable


def _default(obj):
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def emit(data: Any, json_mode: bool, render: Callable[[Any], None] | None = None) -> None:
    if json_mode:
        sys.stdout.write(json.dumps(data, default=_default, indent=2) + "\n")
        sys.stdout.flush()
    elif render is not None:
        render(data)
    else:
        console().print_json(json.dumps(data, default=_default))


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def esc(value) -> str:
    """Text from users, documents or models, safe to interpolate into rich markup."""
    from rich.markup import escape

    return escape(str(value))


def table(*columns: str):
    """A rich Table whose cells are plain text: stored text (questions, documents, model output, file
    names) is shown as is and never parsed as markup, so `[/x]` in a log row cannot crash a listing."""
    from rich.table import Table
    from rich.text import Text

    class PlainTable(Table):
        def add_row(self, *cells, **kwargs):
            super().add_row(*(c if isinstance(c, Text) else Text("" if c is None else str(c)) for c in cells), **kwargs)

    return PlainTable(*columns)


def fail(exc, json_mode: bool) -> None:
    """Print an LlmftiError and exit with its code: JSON on stdout (with --json) and text on stderr."""
    if json_mode:
        sys.stdout.write(json.dumps(exc.to_dict()) + "\n")
    err = console(stderr=True)
    # Messages quote user input and model output: escape them so '[...]' is shown, never parsed as markup.
    err.print(f"[bold red]error:[/] {esc(exc)}", markup=True, highlight=False)
    if getattr(exc, "hint", None):
        err.print(f"[dim]hint:[/] {esc(exc.hint)}")
    raise SystemExit(exc.exit_code)


def home_of(ctx) -> str | None:
    obj = ctx.find_root().obj or {}
    return obj.get("home")
