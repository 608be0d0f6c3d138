"""What only the Redis guard store must do: hold under concurrency, fail closed, expire keys."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
import redis as redis_py

from floorwalker import services
from floorwalker.engine.core.guards import CounterLimit, CouponRecord, Ticket
from floorwalker.engine.stores import RedisGuardSettings, RedisGuardStore
from floorwalker.errors import GuardStoreError
from floorwalker.services import RedisSettings, RunningService

pytestmark = pytest.mark.integration

BUDGET = 200
ATTEMPTS = 500  # per process: together well over the budget, and long enough to overlap


def _hammer(url: str, prefix: str, worker: int, go: Barrier) -> list[str]:
    """Try ATTEMPTS tickets; half their action ids are shared with the other worker."""
    store = RedisGuardStore.from_url(url, RedisGuardSettings(prefix=prefix))
    admitted = []
    store.budget("budget:spring")  # connect before the start line
    go.wait(30.0)
    for i in range(ATTEMPTS):
        action = f"shared-{i // 2}" if i % 2 == 0 else f"w{worker}-{i}"
        ticket = Ticket(
            action,
            counters=(CounterLimit("cap:all:s1", 10**9, None, "cap"),),
            budget_key="budget:spring",
            budget_coupons=BUDGET,
            cost=0.25,
        )
        if store.admit(ticket, 1000.0 + i) is None:
            admitted.append(action)
    store.close()
    return admitted


def _hammer_into(
    url: str, prefix: str, worker: int, go: Barrier, out: multiprocessing.Queue[list[str]]
) -> None:
    out.put(_hammer(url, prefix, worker, go))


def test_two_processes_never_overspend_nor_admit_an_action_twice(
    redis_service: RunningService, unique_prefix: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Barrier(2)  # both workers start hammering together
    out: multiprocessing.Queue[list[str]] = ctx.Queue()
    prefix = f"{unique_prefix}:"
    workers = [
        ctx.Process(target=_hammer_into, args=(redis_service.url, prefix, n, go, out))
        for n in (1, 2)
    ]
    for w in workers:
        w.start()
    results = [out.get(timeout=60.0) for _ in workers]
    for w in workers:
        w.join(10.0)
        assert w.exitcode == 0
    admitted = results[0] + results[1]
    assert len(admitted) == BUDGET
    assert len(set(admitted)) == BUDGET, "an action id was admitted by both processes"
    assert all(results), "one worker got nothing: the processes did not really compete"
    store = RedisGuardStore.from_url(redis_service.url, RedisGuardSettings(prefix=prefix))
    state = store.budget("budget:spring")
    assert (state.coupons, state.amount) == (BUDGET, BUDGET * 0.25)
    store.close()


def _calls(store: RedisGuardStore) -> dict[str, Callable[[], object]]:
    coupon = CouponRecord("C1", "a1", "r", "o", "s001", "s1", 0.0, 100.0)
    return {
        "first_seen": lambda: store.first_seen("k", 60.0, 0.0),
        "admit": lambda: store.admit(Ticket("a9", coupon=coupon), 0.0),
        "redeem": lambda: store.redeem("C1", 1.0),
        "budget": lambda: store.budget("b"),
        "forget_shopper": lambda: store.forget_shopper("s1"),
    }


def test_stopped_redis_fails_closed_at_once_then_recovers(tmp_path: Path) -> None:
    with services.redis(RedisSettings(), tmp_path) as server:
        store = RedisGuardStore.from_url(server.url)
        assert store.admit(Ticket("a1"), 0.0) is None
        server.stop()
        for name, call in _calls(store).items():
            started = time.monotonic()
            with pytest.raises(GuardStoreError, match=name):
                call()
            assert time.monotonic() - started < 2.0, f"{name} hung on a stopped Redis"
        server.restart()  # empty again, and the scripts must be loaded anew
        assert store.admit(Ticket("a1"), 0.0) is None
        assert store.admit(Ticket("a1"), 1.0) == "duplicate"
        store.close()


def test_frozen_redis_times_out_instead_of_hanging(tmp_path: Path) -> None:
    settings = RedisGuardSettings(socket_timeout_s=0.3)
    with services.redis(RedisSettings(), tmp_path) as server:
        store = RedisGuardStore.from_url(server.url, settings)
        assert store.admit(Ticket("a1"), 0.0) is None
        os.kill(server.pid, signal.SIGSTOP)  # accepts TCP (kernel backlog), never answers
        try:
            started = time.monotonic()
            with pytest.raises(GuardStoreError, match="Timeout"):
                store.admit(Ticket("a2"), 1.0)
            assert time.monotonic() - started < 2.0
        finally:
            os.kill(server.pid, signal.SIGCONT)
        store.close()


def test_ttls_follow_the_engine_clock_and_budgets_never_expire(
    redis_service: RunningService, unique_prefix: str
) -> None:
    prefix = f"{unique_prefix}:"
    store = RedisGuardStore.from_url(redis_service.url, RedisGuardSettings(prefix=prefix))
    now = 1_700_000_000.0  # a virtual clock far from Redis' own
    ticket = Ticket(
        "a1",
        counters=(CounterLimit("cap:bogo:s1", 1, now + 3600.0, "cap"),),
        cooldown_key="cooldown:s1",
        cooldown_s=600.0,
        budget_key="budget:spring",
        budget_coupons=10,
    )
    assert store.admit(ticket, now) is None
    assert store.first_seen("msg:m1", 60.0, now) is True
    raw = redis_py.Redis.from_url(redis_service.url)
    assert 3_590_000 < raw.pttl(f"{prefix}ctr:cap:bogo:s1") <= 3_600_000
    assert 590_000 < raw.pttl(f"{prefix}cd:cooldown:s1") <= 600_000
    assert 50_000 < raw.pttl(f"{prefix}seen:msg:m1") <= 60_000
    assert raw.pttl(f"{prefix}bud:budget:spring") == -1  # no expiry
    raw.close()
    store.close()


def test_a_client_without_decoding_works_too(
    redis_service: RunningService, unique_prefix: str
) -> None:
    client = redis_py.Redis.from_url(redis_service.url)  # replies are bytes
    store = RedisGuardStore(client, RedisGuardSettings(prefix=f"{unique_prefix}:"))
    coupon = CouponRecord("C1", "a1", "r", "o", "s001", "s1", 0.0, 100.0)
    assert store.admit(Ticket("a1", coupon=coupon, budget_key="b"), 0.0) is None
    assert store.admit(Ticket("a1"), 0.0) == "duplicate"
    assert store.redeem("C1", 1.0) == (coupon, None)
    assert store.budget("b").coupons == 1
    assert store.forget_shopper("s1") == 1  # the coupon; action id "a1" is not about s1
    client.close()


def test_every_shopper_key_expires(redis_service: RunningService, unique_prefix: str) -> None:
    prefix = f"{unique_prefix}:"
    settings = RedisGuardSettings(prefix=prefix)
    store = RedisGuardStore.from_url(redis_service.url, settings)
    now = 1_700_000_000.0
    week = 7 * 86400.0
    coupon = CouponRecord("C-1", "a1", "bogo", "yogurt", "s001", "s1", now, now + 3600.0)
    ticket = Ticket(
        "a1",
        counters=(
            CounterLimit("cap:bogo:o:campaign:s1:-", 1, None, "cap"),  # per: campaign
            CounterLimit("cap:*:day:s1:2023-11-14", 3, now + 3600.0, "cap_all_rules"),
        ),
        cooldown_key="cooldown:bogo:s1",
        cooldown_s=600.0,
        fatigue_key="fatigue:s1",
        fatigue_streak=3,
        fatigue_backoff_s=week,
        coupon=coupon,
    )
    assert store.admit(ticket, now) is None
    raw = redis_py.Redis.from_url(redis_service.url, decode_responses=True)
    try:
        keys = list(raw.scan_iter(match=f"{prefix}*"))
        assert len(keys) == 7
        assert all(raw.pttl(k) > 0 for k in keys), {k: raw.pttl(k) for k in keys}
        fatigue_ms = (week + settings.fatigue_retention_s) * 1000
        assert 0.99 * fatigue_ms < raw.pttl(f"{prefix}fat:fatigue:s1") <= fatigue_ms
        campaign_ms = settings.open_counter_retention_s * 1000
        pttl = raw.pttl(f"{prefix}ctr:cap:bogo:o:campaign:s1:-")
        assert 0.99 * campaign_ms < pttl <= campaign_ms
        # Streak and campaign count stay exact while they are kept.
        assert raw.hget(f"{prefix}fat:fatigue:s1", "streak") == "1"
        assert store.admit(Ticket("a2", counters=ticket.counters[:1]), now + 1) == "cap"
    finally:
        raw.close()
        store.close()
