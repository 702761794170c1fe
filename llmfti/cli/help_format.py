"""How `--help` shows options. typer 0.29 prints the value type after every option, flags included
(`--json <bool>`, `--help <bool>`), which reads as if the flag took a value. A flag takes none, so
its type column is left empty; every other option keeps typer's label (`<str>`, `<int range>`, ...).
Installed once by `llmfti.cli` before the app is built; a test renders `--help` and checks it."""

from __future__ import annotations


def hide_flag_types() -> None:
    """Make typer's option type label empty for flags (bool options that take no value)."""
    from typer.core import TyperOption

    if getattr(TyperOption.display_type_rich, "_llmfti", False):
        return
    shown = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    display_type_rich._llmfti = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich
