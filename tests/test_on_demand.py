"""On-demand transformations: one registered function for serving and for backfill."""

from datetime import datetime, timezone

import pytest

from llmfti.errors import ConfigError
from llmfti.transforms.on_demand import backfill_features, compute_features, list_on_demand, register_on_demand


def test_builtins_and_backfill_match_serving():
    now = datetime(2024, 5, 6, 7, 8, tzinfo=timezone.utc)
    request = {"question": "  What\u00a0is   X? ", "locale": "de"}
    served = compute_features(["current_date", "user_locale", "normalized_question"], request, now)
    assert served == {"current_date": "2024-05-06", "user_locale": "de", "normalized_question": "What is X?"}
    backfilled = backfill_features(["current_date", "user_locale", "normalized_question"], [{**request, "event_time": now}])
    assert backfilled == [served]


def test_extensions_register_like_builtins():
    @register_on_demand("question_length")
    def question_length(request, now):
        return len(request["question"])

    assert "question_length" in list_on_demand()
    assert compute_features(["question_length"], {"question": "abc"}, datetime.now(timezone.utc)) == {"question_length": 3}
    with pytest.raises(ConfigError, match="unknown on-demand transformation"):
        compute_features(["nope"], {}, datetime.now(timezone.utc))
