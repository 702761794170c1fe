"""What a user asks `llmfti monitor` for, parsed with clear errors: times (ISO-8601 or '24h' ago),
the baseline (`eval:SUITE`, `td:NAME:N`, `window:T1..T2`) and a commit range (`C1..C2`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from llmfti.errors import ConfigError
from llmfti.sources.timeparse import parse_time

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value, now: datetime, what: str = "time") -> datetime | None:
    """An ISO-8601 time, or a duration before `now`: '90m', '24h', '7d', '2w'."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and (m := _RELATIVE.match(value)):
        return now - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    try:
        return parse_time(value)
    except ValueError:
        raise ConfigError(f"{what} {value!r} is neither an ISO-8601 time (2026-11-26T08:00:00Z) nor a duration ago (90m, 24h, 7d)") from None


@dataclass
class Baseline:
    kind: str  # eval | td | window
    ref: str  # what follows "kind:"
    since: datetime | None = None  # window only
    until: datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.ref}"


def parse_baseline(spec: str | None, now: datetime) -> Baseline | None:
    """`eval:SUITE`, `td:NAME:N` (or `td:NAME`, its latest version) or `window:T1..T2`."""
    if not spec:
        return None
    kind, _, ref = spec.partition(":")
    if kind not in ("eval", "td", "window") or not ref:
        raise ConfigError(f"--baseline {spec!r}: expected eval:SUITE, td:NAME:N or window:T1..T2")
    if kind != "window":
        return Baseline(kind, ref)
    start, sep, end = ref.partition("..")
    if not sep:
        raise ConfigError(f"--baseline {spec!r}: a window is window:T1..T2 (e.g. window:2026-11-01..2026-11-08 or window:14d..7d)")
    b = Baseline(kind, ref, parse_when(start, now, "baseline start"), parse_when(end, now, "baseline end") or now)
    if b.since is not None and b.since >= b.until:
        raise ConfigError(f"--baseline {spec!r}: the window is empty (start {b.since.isoformat()} is not before end {b.until.isoformat()})")
    return b


def parse_commits(spec: str | None) -> tuple[str, str] | None:
    if not spec:
        return None
    a, sep, b = spec.partition("..")
    if not sep or not a or not b:
        raise ConfigError(f"--commits {spec!r}: expected C1..C2 (commit numbers, tags, or 'latest')")
    return a, b
