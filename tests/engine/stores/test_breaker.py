"""The Redis breaker: a per-event budget, one retry, failing at once while open, a probe."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from floorwalker.engine.stores.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerSettings,
    RedisBreaker,
)
from floorwalker.errors import GuardStoreError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Redis:
    """Attempts that take ``took`` seconds of the fake clock, then fail or answer."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.attempts = 0

    def __call__(self, took: float = 0.001, fail: Exception | None = None) -> Callable[[], str]:
        def attempt() -> str:
            self.attempts += 1
            self.clock.now += took
            if fail is not None:
                raise fail
            return "OK"

        return attempt


def timeout() -> RedisTimeoutError:
    return RedisTimeoutError("Timeout reading from socket")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> RedisBreaker:
    return RedisBreaker(BreakerSettings(0.05, 0.02, 1.0), clock=clock)


def test_a_slow_reply_is_retried_once_and_the_call_succeeds(
    clock: Clock, breaker: RedisBreaker
) -> None:
    redis = Redis(clock)
    breaker.begin()
    answers = iter([timeout(), None])

    def flaky() -> str:
        redis.attempts += 1
        clock.now += 0.02
        err = next(answers)
        if err is not None:
            raise err
        return "OK"

    assert breaker.call("admit", flaky, retry=True) == "OK"
    assert redis.attempts == 2 and breaker.state == CLOSED and breaker.failures == 1


def test_without_retry_one_failure_fails_the_call_and_two_in_a_row_open(
    clock: Clock, breaker: RedisBreaker
) -> None:
    redis = Redis(clock)
    breaker.begin()
    with pytest.raises(GuardStoreError, match="TimeoutError"):
        breaker.call("redeem", redis(0.02, timeout()))
    assert breaker.state == CLOSED, "one slow reply is not an outage"
    with pytest.raises(GuardStoreError):
        breaker.call("redeem", redis(0.02, timeout()))
    assert breaker.state == OPEN and breaker.trips == 1


def test_redis_paused_the_first_event_spends_two_attempts_then_everything_fails_at_once(
    clock: Clock, breaker: RedisBreaker
) -> None:
    redis = Redis(clock)
    breaker.begin()
    start = clock.now
    with pytest.raises(GuardStoreError):
        breaker.call("first_seen", redis(0.02, timeout()), retry=True)
    assert breaker.state == OPEN
    for _ in range(3):  # the same event's next calls: no waiting
        with pytest.raises(GuardStoreError, match="not answering"):
            breaker.call("admit", redis(0.02, timeout()), retry=True)
    assert redis.attempts == 2
    assert clock.now - start <= breaker.settings.budget_s
    breaker.begin()
    with pytest.raises(GuardStoreError, match="not answering"):
        breaker.call("save", redis(0.02, timeout()), retry=True)
    assert redis.attempts == 2
    assert breaker.refused == {"open": 4, "budget": 0}


def test_after_the_retry_interval_one_probe_closes_or_reopens(
    clock: Clock, breaker: RedisBreaker
) -> None:
    redis = Redis(clock)
    refused = RedisConnectionError("Connection refused")
    with pytest.raises(GuardStoreError):
        breaker.call("admit", redis(0.0, refused), retry=True)
    assert breaker.state == OPEN
    clock.now += 1.01
    breaker.begin()
    with pytest.raises(GuardStoreError):
        breaker.call("admit", redis(0.02, timeout()), retry=True)
    assert redis.attempts == 3, "the probe is one attempt, not retried"
    assert breaker.state == OPEN and breaker.trips == 1, "a failed probe is not a new trip"
    assert breaker.is_open
    clock.now += 1.01
    assert not breaker.is_open
    breaker.begin()
    assert breaker.call("admit", redis()) == "OK"
    assert breaker.state == CLOSED


def test_the_budget_bounds_what_failed_attempts_cost_one_event(
    clock: Clock, breaker: RedisBreaker
) -> None:
    """An attempt starts only if one more 20 ms timeout fits the 50 ms lost so far."""
    redis = Redis(clock)
    breaker.begin()
    with pytest.raises(GuardStoreError):
        breaker.call("a", redis(0.021, timeout()))  # 21 ms lost: one more attempt fits
    with pytest.raises(GuardStoreError, match="ConnectionError"):
        breaker.call("c", redis(0.009, RedisConnectionError("reset")))  # 30 ms lost: opens
    assert breaker.state == OPEN
    clock.now += 1.01
    breaker.begin()
    breaker.call("probe", redis(0.001))
    breaker.begin()
    with pytest.raises(GuardStoreError):
        breaker.call("d", redis(0.031, timeout()))
    with pytest.raises(GuardStoreError, match="budget"):
        breaker.call("e", redis())  # 31 ms lost: the next could end at 51 ms
    assert breaker.refused["budget"] == 1
    assert breaker.state == CLOSED, "one failure and a spent budget are not an outage"
    breaker.begin()
    breaker.call("f", redis())


def test_answers_are_not_charged_to_the_budget(clock: Clock, breaker: RedisBreaker) -> None:
    """Sixty admissions in one round of due timers, a millisecond each, all go through."""
    redis = Redis(clock)
    breaker.begin()
    for _ in range(60):
        breaker.call("admit", redis(0.001), retry=True)
    assert redis.attempts == 60 and breaker.refused == {"open": 0, "budget": 0}


def test_an_error_redis_answered_is_neither_retried_nor_an_outage(
    clock: Clock, breaker: RedisBreaker
) -> None:
    redis = Redis(clock)
    for _ in range(3):
        with pytest.raises(GuardStoreError, match="ResponseError"):
            breaker.call("admit", redis(0.001, ResponseError("WRONGTYPE")), retry=True)
    assert redis.attempts == 3 and breaker.state == CLOSED


def test_a_probe_that_gets_an_answered_error_closes(clock: Clock, breaker: RedisBreaker) -> None:
    redis = Redis(clock)
    with pytest.raises(GuardStoreError):
        breaker.call("x", redis(0.0, RedisConnectionError("refused")), retry=True)
    clock.now += 2
    breaker.begin()
    states = []

    def probe() -> str:
        states.append(breaker.state)
        raise ResponseError("NOSCRIPT")

    with pytest.raises(GuardStoreError):
        breaker.call("probe", probe)
    assert states == [HALF_OPEN] and breaker.state == CLOSED


def test_settings_must_fit_a_call_in_the_budget() -> None:
    with pytest.raises(ValueError, match="budget"):
        BreakerSettings(budget_s=0.01, call_timeout_s=0.02)
    with pytest.raises(ValueError, match="retry"):
        BreakerSettings(retry_after_s=0)
