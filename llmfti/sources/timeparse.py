"""Parsing event times and as-of points: ISO-8601 dates/times and epoch seconds, always UTC-aware."""

from __future__ import annotations

from datetime import date, datetime, timezone


class TimeOutOfRange(ValueError):
    """A well-formed time that has no UTC equivalent in Python's datetime range (years 1..9999),
    e.g. 0001-01-01T00:00:00+01:00. A ValueError, so every caller that rejects bad times rejects it."""


def parse_time(value) -> datetime:
    """ISO-8601 string (date or datetime, 'Z' allowed), epoch seconds, date or datetime -> aware UTC.
    Naive values are taken as UTC. Raises ValueError (TimeOutOfRange for times out of range) on
    anything else, never OverflowError."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:  # out-of-range epochs are bad input, not crashes
            raise TimeOutOfRange(f"time out of range: {value!r}") from exc
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    else:
        raise ValueError(f"not a time: {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        return dt.astimezone(timezone.utc)
    except OverflowError as exc:  # the UTC shift crosses year 1 or year 9999
        raise TimeOutOfRange(f"time out of range: {value!r} has no UTC equivalent between years 1 and 9999") from exc


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
