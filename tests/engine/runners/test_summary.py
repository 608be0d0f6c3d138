"""The replay summary: response times beside the target, unanswered, pages per band."""

from __future__ import annotations

from collections import Counter

import orjson

from floorwalker.engine.core.stats import EngineStats
from floorwalker.engine.runners.summary import (
    format_summary,
    percentile,
    staff_summary,
    summary_json,
)


def _stats() -> EngineStats:
    s = EngineStats()
    s.triggered = Counter({"service-bell": 12, "greet": 3, "coffee": 5})
    s.sent = Counter({("service-bell", "alert"): 12, ("greet", "alert"): 3, ("coffee", "offer"): 5})
    s.response_s = {"service-bell": [10.0, 20.0, 30.0, 40.0, 200.0]}
    s.response_target_s = {"service-bell": 120.0}
    s.within_target = Counter({"service-bell": 4})
    s.unanswered = Counter({"service-bell": 2, "greet": 3})
    s.escalations = Counter({"service-bell": 6})
    s.pages = Counter({"band-ana": 9, "band-bo": 6})
    return s


def test_percentile_matches_numpy_linear() -> None:
    assert percentile([], 50) is None
    assert percentile([10.0, 20.0, 30.0, 40.0, 200.0], 50) == 30.0
    assert percentile([10.0, 20.0, 30.0, 40.0, 200.0], 90) == 136.0
    assert percentile([5.0], 90) == 5.0


def test_staff_loop_per_rule() -> None:
    s = _stats()
    bell = staff_summary(s, "service-bell")
    assert bell is not None
    assert bell["answered"] == 5 and bell["unanswered"] == 2 and bell["escalations"] == 6
    assert bell["response_s"] == {"p50": 30.0, "p90": 136.0, "mean": 60.0, "max": 200.0}
    assert bell["response_target_s"] == 120.0
    assert bell["within_target"] == 4 and bell["within_target_share"] == 0.8
    assert bell["within_target_share_of_ended"] == round(4 / 7, 4)
    assert staff_summary(s, "coffee") is None  # offers only
    greet = staff_summary(s, "greet")
    assert greet is not None and "response_s" not in greet and greet["response_target_s"] is None
    # a target nobody answered yet comes from the rules
    greet = staff_summary(s, "greet", {"greet": 60.0})
    assert greet is not None and greet["response_target_s"] == 60.0
    assert greet["within_target"] == 0 and greet["within_target_share"] is None
    assert greet["within_target_share_of_ended"] == 0.0


def test_text_summary_shows_the_staff_loop() -> None:
    text = format_summary(_stats(), {"greet": 60.0})
    assert "staff response: 5 answered, p50 30.0 s, p90 136.0 s, mean 60.0 s (target 120 s)" in text
    assert "within target: 4 of 5 answered (80%)" in text
    assert "unanswered: 2" in text and "unanswered: 3" in text
    assert "staff response: none answered (target 60 s)" in text
    assert "escalations: 6" in text
    assert "pages per band: band-ana=9, band-bo=6" in text
    coffee = text.split("coffee", 1)[1].split("\n", 2)[1]
    assert "staff" not in coffee  # an offer rule has no staff lines


def test_summary_json_adds_staff_and_pages() -> None:
    doc = summary_json(_stats())
    assert doc["pages"] == {"band-ana": 9, "band-bo": 6}
    assert doc["rules"]["service-bell"]["staff"]["response_s"]["p90"] == 136.0
    assert "staff" not in doc["rules"]["coffee"]
    orjson.dumps(doc)
