from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from floorwalker.rules.durations import (
    DURATION_PATTERN,
    DurationError,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("30m", 1800.0),
        ("2h", 7200.0),
        ("14d", 14 * 86400.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s", 93784.0),
        ("1.5h", 5400.0),
        ("0.5s", 0.5),
        ("90", 90.0),
        (90, 90.0),
        (2.5, 2.5),
    ],
)
def test_parses_what_marketers_write(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10 sec", "10 s", "30m1h", "1h1h", "", "s", "1e3", "10S", "-5s"])
def test_rejects_anything_else_and_says_how_to_write_it(text: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert str(caught.value) == f"`{text}` is not a duration; write 10s, 5m, 2h or 1d " + (
        "(or combine them, e.g. 1h30m)"
    )


@pytest.mark.parametrize("value", [True, None, [10], float("inf"), float("nan")])
def test_rejects_values_that_are_not_durations(value: object) -> None:
    with pytest.raises(DurationError, match="is not a duration"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0s", 0, -1, -0.5, "0"])
def test_a_duration_must_be_positive(value: str | int | float) -> None:
    with pytest.raises(DurationError, match="is not longer than zero"):
        parse_duration(value)


def test_zero_is_allowed_only_when_asked_for() -> None:
    assert parse_duration("0s", allow_zero=True) == 0.0
    with pytest.raises(DurationError):
        parse_duration(-1, allow_zero=True)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(10, "10s"), (90, "1m30s"), (5400, "1h30m"), (14 * 86400, "14d"), (0.5, "0.5s"), (0, "0s")],
)
def test_formats_the_shortest_spelling(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_refuses_negative_durations() -> None:
    with pytest.raises(ValueError, match="cannot format"):
        format_duration(-1)


@given(st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_format_then_parse_is_exact(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    "text", ["10s", "1h30m", "1.5h", "90", "10 sec", "30m1h", "", "s", "1e3", "2h ", "h2"]
)
def test_schema_pattern_accepts_exactly_what_the_parser_accepts(text: str) -> None:
    try:
        parse_duration(text)
        parsed = True
    except DurationError:
        parsed = False
    assert bool(re.match(DURATION_PATTERN, text)) is parsed
