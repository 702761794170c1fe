"""Names of feature groups and training datasets: they become LanceDB table names, so one rule."""

from __future__ import annotations

import re

from llmfti.errors import ConfigError

# \A...\Z and fullmatch: `match` with `$` also accepts a trailing newline ("docs\n"), a name no table can hold.
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")


def parse_ref(ref: str) -> tuple[str, int | None]:
    """'NAME' -> (NAME, None) meaning latest version; 'NAME:3' -> (NAME, 3)."""
    name, _, version = ref.partition(":")
    if not NAME_RE.fullmatch(name):
        raise ConfigError(f"invalid feature group name {name!r}: use letters, digits, '_', '-', '.' (max 63)")
    if not version:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ConfigError(f"invalid version in {ref!r}: expected a positive integer as in NAME:2")
    return name, int(version)
