"""On-demand transformations: functions of request parameters computed at request time.

The same registered function serves the online agent and a feature pipeline's backfill (called with
a historical row's values and its `event_time` as `now`), so request-time features never skew.

    @register_on_demand("weekday")
    def weekday(request: dict, now: datetime) -> str:
        return now.strftime("%A")
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Callable

from llmfti.plugins import Registry

OnDemandFn = Callable[[dict, datetime], object]
ON_DEMAND: Registry = Registry("on-demand transformation")
register_on_demand = ON_DEMAND.register
get_on_demand = ON_DEMAND.get
list_on_demand = ON_DEMAND.names


def compute_features(names: list[str], request: dict, now: datetime) -> dict:
    """Values of the named on-demand features for one request (or one historical row)."""
    return {name: get_on_demand(name)(request, now) for name in names}


def backfill_features(names: list[str], rows: list[dict], time_column: str = "event_time") -> list[dict]:
    """The feature-pipeline path: the same functions over historical rows, each evaluated as of its
    own time (`now` = the row's event time), so training features equal what serving would compute."""
    return [compute_features(names, row, row[time_column]) for row in rows]


@register_on_demand("current_date")
def current_date(request: dict, now: datetime) -> str:
    return now.date().isoformat()


@register_on_demand("user_locale")
def user_locale(request: dict, now: datetime) -> str:
    return str(request.get("locale") or "en")


@register_on_demand("normalized_question")
def normalized_question(request: dict, now: datetime) -> str:
    """Unicode-normalised, whitespace-collapsed question: what retrieval embeds."""
    text = unicodedata.normalize("NFKC", str(request.get("question", "")))
    return re.sub(r"\s+", " ", text).strip()
