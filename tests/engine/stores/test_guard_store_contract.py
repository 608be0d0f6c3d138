"""One contract for every GuardStore: the in-memory reference and the Redis store.

Each test runs against both; the Redis one uses the session Redis under the
test's own key prefix. Times are the engine clock passed in, never the wall clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from floorwalker.engine.core.guards import (
    BudgetState,
    CounterLimit,
    CouponRecord,
    GuardStore,
    InMemoryGuardStore,
    Ticket,
    fatigue_key,
)
from floorwalker.engine.stores import RedisGuardSettings, RedisGuardStore
from floorwalker.services import RunningService

DAY = 86400.0
WEEK = 7 * DAY


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, unique_prefix: str) -> Iterator[GuardStore]:
    if request.param == "memory":
        yield InMemoryGuardStore()
        return
    redis_service: RunningService = request.getfixturevalue("redis_service")
    settings = RedisGuardSettings(prefix=f"{unique_prefix}:")
    redis_store = RedisGuardStore.from_url(redis_service.url, settings)
    yield redis_store
    redis_store.close()


def _coupon(code: str, shopper: str = "s1", expires: float = 1000.0) -> CouponRecord:
    return CouponRecord(
        code=code,
        action_id=f"offer:s001:{shopper}:{code}",
        rule="chilled-dwell-bogo",
        offer="bogo-yogurt",
        store="s001",
        shopper=shopper,
        issued=10.5,
        expires=expires,
    )


def _cap(
    key: str, limit: int, expires_at: float | None = None, reason: str = "cap"
) -> CounterLimit:
    return CounterLimit(key=key, limit=limit, expires_at=expires_at, reason=reason)


# --- first_seen -------------------------------------------------------------


def test_first_seen_once_within_ttl_on_the_engine_clock(store: GuardStore) -> None:
    assert store.first_seen("msg:s001:m1", 60.0, 1000.0) is True
    assert store.first_seen("msg:s001:m1", 60.0, 1059.9) is False
    assert store.first_seen("msg:s001:m2", 60.0, 1059.9) is True
    # The TTL is measured on the clock passed in, not on Redis' clock.
    assert store.first_seen("msg:s001:m1", 60.0, 1060.0) is True
    assert store.first_seen("msg:s001:m1", 60.0, 1061.0) is False


# --- admit: each limit and its reason ----------------------------------------


def test_admit_refuses_a_repeated_action_id_for_a_week(store: GuardStore) -> None:
    assert store.admit(Ticket("a1"), 0.0) is None
    assert store.admit(Ticket("a1"), 10.0) == "duplicate"
    assert store.admit(Ticket("a2"), 10.0) is None
    assert store.admit(Ticket("a1"), WEEK - 0.001) == "duplicate"
    assert store.admit(Ticket("a1"), WEEK) is None


def test_cooldown(store: GuardStore) -> None:
    def ticket(action: str) -> Ticket:
        return Ticket(action, cooldown_key="cooldown:s1:bogo", cooldown_s=60.0)

    assert store.admit(ticket("a1"), 100.0) is None
    assert store.admit(ticket("a2"), 159.9) == "cooldown"
    assert store.admit(ticket("a3"), 160.0) is None
    assert (
        store.admit(Ticket("a4", cooldown_key="cooldown:s2:bogo", cooldown_s=60.0), 160.0) is None
    )


@pytest.mark.parametrize("reason", ["cap", "cap_all_rules"])
def test_counter_limit_and_its_reason(store: GuardStore, reason: str) -> None:
    def ticket(action: str, key: str = "cap:bogo:s1") -> Ticket:
        return Ticket(action, counters=(_cap(key, 2, DAY, reason),))

    assert store.admit(ticket("a1"), 0.0) is None
    assert store.admit(ticket("a2"), 1.0) is None
    assert store.admit(ticket("a3"), 2.0) == reason
    assert store.admit(ticket("a4", key="cap:bogo:s2"), 2.0) is None


def test_counter_expires_at_its_deadline_on_the_engine_clock(store: GuardStore) -> None:
    def ticket(action: str, expires_at: float) -> Ticket:
        return Ticket(action, counters=(_cap("cap:bogo:s1", 1, expires_at),))

    assert store.admit(ticket("a1", 100.0), 0.0) is None
    assert store.admit(ticket("a2", 100.0), 99.999) == "cap"
    assert store.admit(ticket("a3", 200.0), 100.0) is None
    assert store.admit(ticket("a4", 200.0), 150.0) == "cap"


def test_counter_without_expiry_never_resets(store: GuardStore) -> None:
    assert store.admit(Ticket("a1", counters=(_cap("cap:welcome:s1", 1),)), 0.0) is None
    assert store.admit(Ticket("a2", counters=(_cap("cap:welcome:s1", 1),)), 10 * WEEK) == "cap"


def test_budget_in_coupons(store: GuardStore) -> None:
    def ticket(action: str) -> Ticket:
        return Ticket(action, budget_key="budget:spring", budget_coupons=3, cost=2.5)

    assert [store.admit(ticket(f"a{i}"), float(i)) for i in range(4)] == [
        None,
        None,
        None,
        "budget",
    ]
    # No coupon to expire: the charges stay reserved.
    assert store.budget("budget:spring") == BudgetState(3, 7.5, 3, 7.5, 0, 0.0)
    assert (store.budget("budget:spring").coupons, store.budget("budget:spring").amount) == (3, 7.5)
    assert store.budget("budget:other") == BudgetState()


def test_budget_in_money_tolerates_float_sums(store: GuardStore) -> None:
    def ticket(action: str) -> Ticket:
        return Ticket(action, budget_key="budget:coffee", budget_amount=1.0, cost=0.1)

    # 0.1 added ten times is 0.9999999999999999: the tenth must still fit.
    results = [store.admit(ticket(f"a{i}"), float(i)) for i in range(11)]
    assert results == [None] * 10 + ["budget"]
    assert store.budget("budget:coffee").amount == pytest.approx(1.0)


def test_budget_never_expires(store: GuardStore) -> None:
    def ticket(action: str) -> Ticket:
        return Ticket(action, budget_key="budget:spring", budget_coupons=1)

    assert store.admit(ticket("a1"), 0.0) is None
    assert store.admit(ticket("a2"), 52 * WEEK) == "budget"


def test_fatigue_backs_off_after_a_streak(store: GuardStore) -> None:
    def ticket(action: str) -> Ticket:
        return Ticket(action, fatigue_key="fatigue:s1", fatigue_streak=3, fatigue_backoff_s=WEEK)

    assert [store.admit(ticket(f"a{i}"), float(i)) for i in range(3)] == [None, None, None]
    assert store.admit(ticket("a3"), 3.0) == "fatigue"
    assert store.admit(ticket("a4"), 2.0 + WEEK - 0.001) == "fatigue"
    assert store.admit(ticket("a5"), 2.0 + WEEK) is None


def test_reasons_come_in_the_reference_order(store: GuardStore) -> None:
    counters = (_cap("cap:all:s1", 1, DAY, "cap_all_rules"), _cap("cap:bogo:s1", 1, DAY))
    full = Ticket(
        "a1",
        counters=counters,
        cooldown_key="cooldown:s1",
        cooldown_s=600.0,
        budget_key="budget:b",
        budget_coupons=1,
        fatigue_key="fatigue:s1",
        fatigue_streak=1,
        fatigue_backoff_s=WEEK,
    )
    assert store.admit(full, 0.0) is None
    # Peel the limits off one by one: each refusal names the first that fails.
    assert store.admit(full, 1.0) == "duplicate"
    t = Ticket("a2", counters=counters, cooldown_key="cooldown:s1", budget_key="budget:b")
    assert store.admit(t, 1.0) == "cooldown"
    t = Ticket("a2", counters=counters, budget_key="budget:b", budget_coupons=1)
    assert store.admit(t, 1.0) == "cap_all_rules"
    t = Ticket("a2", counters=counters[1:], budget_key="budget:b", budget_coupons=1)
    assert store.admit(t, 1.0) == "cap"
    t = Ticket("a2", budget_key="budget:b", budget_coupons=1, fatigue_key="fatigue:s1")
    assert store.admit(t, 1.0) == "budget"
    t = Ticket("a2", fatigue_key="fatigue:s1", fatigue_streak=1, fatigue_backoff_s=WEEK)
    assert store.admit(t, 1.0) == "fatigue"


def test_a_refused_ticket_records_nothing(store: GuardStore) -> None:
    assert store.admit(Ticket("a0", budget_key="budget:b", budget_coupons=1), 0.0) is None
    ticket = Ticket(
        "a1",
        counters=(_cap("cap:bogo:s1", 1, DAY),),
        cooldown_key="cooldown:s1",
        cooldown_s=600.0,
        budget_key="budget:b",
        budget_coupons=1,
        fatigue_key="fatigue:s1",
        fatigue_streak=1,
        fatigue_backoff_s=WEEK,
        coupon=_coupon("C1"),
    )
    assert store.admit(ticket, 1.0) == "budget"
    assert store.budget("budget:b") == BudgetState(1, 0.0, 1, 0.0)
    assert store.redeem("C1", 2.0) == (None, "unknown_coupon")
    # The same ticket against a fresh budget passes every other limit: its cap,
    # cooldown, fatigue streak and action id were not recorded by the refusal.
    again = Ticket(
        "a1",
        counters=ticket.counters,
        cooldown_key="cooldown:s1",
        cooldown_s=600.0,
        budget_key="budget:fresh",
        budget_coupons=1,
        fatigue_key="fatigue:s1",
        fatigue_streak=1,
        fatigue_backoff_s=WEEK,
    )
    assert store.admit(again, 2.0) is None


# --- budgets: reserve on issue, spend on redemption, release at expiry --------


def _offer(
    code: str,
    expires: float,
    *,
    cost: float = 2.0,
    coupons: int | None = None,
    amount: float | None = None,
    shopper: str = "s1",
) -> Ticket:
    """An offer's ticket: its coupon charged to ``budget:bogo``."""
    coupon = dataclasses.replace(_coupon(code, shopper, expires), cost=cost)
    return Ticket(
        coupon.action_id,
        budget_key="budget:bogo",
        budget_coupons=coupons,
        budget_amount=amount,
        cost=cost,
        coupon=coupon,
    )


def test_an_issued_coupon_reserves_and_its_redemption_spends(store: GuardStore) -> None:
    assert store.admit(_offer("C1", 100.0, cost=2.5), 0.0) is None
    assert store.admit(_offer("C2", 100.0, cost=2.5), 1.0) is None
    assert store.budget("budget:bogo", 2.0) == BudgetState(2, 5.0, 2, 5.0, 0, 0.0)
    assert store.redeem("C1", 50.0)[1] is None
    state = store.budget("budget:bogo", 51.0)
    assert state == BudgetState(2, 5.0, 1, 2.5, 1, 2.5)
    assert (state.coupons, state.amount, state.released) == (2, 5.0, 0)
    # Redeeming again changes nothing.
    assert store.redeem("C1", 52.0)[1] == "already_redeemed"
    assert store.budget("budget:bogo", 52.0) == state


def test_a_coupon_expired_unredeemed_releases_its_reservation(store: GuardStore) -> None:
    assert store.admit(_offer("C1", 100.0, coupons=2), 0.0) is None
    assert store.admit(_offer("C2", 200.0, coupons=2), 1.0) is None
    assert store.admit(_offer("C3", 300.0, coupons=2), 2.0) == "budget"
    # Valid up to and including its expiry: still reserved at 100.0.
    assert store.admit(_offer("C3", 300.0, coupons=2), 100.0) == "budget"
    assert store.budget("budget:bogo", 100.0).reserved == 2
    # Past it, C1's slot and money go back, and the next offer fits.
    assert store.admit(_offer("C3", 300.0, coupons=2), 100.5) is None
    state = store.budget("budget:bogo", 100.5)
    assert state == BudgetState(3, 6.0, 2, 4.0, 0, 0.0)
    assert (state.released, state.released_amount) == (1, 2.0)
    assert store.redeem("C1", 101.0)[1] == "expired_coupon"
    assert store.budget("budget:bogo", 101.0) == state


def test_budget_in_money_counts_reserved_and_spent(store: GuardStore) -> None:
    assert store.admit(_offer("C1", 100.0, cost=4.0, amount=10.0), 0.0) is None
    assert store.admit(_offer("C2", 100.0, cost=4.0, amount=10.0), 0.0) is None
    assert store.redeem("C1", 10.0)[1] is None  # 4.0 spent, 4.0 reserved
    assert store.admit(_offer("C3", 500.0, cost=4.0, amount=10.0), 20.0) == "budget"
    # C2 expires unredeemed: 4.0 spent + 4.0 new reservation fit in 10.0.
    assert store.admit(_offer("C3", 500.0, cost=4.0, amount=10.0), 100.001) is None
    state = store.budget("budget:bogo", 100.001)
    assert state == BudgetState(3, 12.0, 1, 4.0, 1, 4.0)
    assert state.amount == 8.0


def test_budget_without_now_releases_nothing(store: GuardStore) -> None:
    assert store.admit(_offer("C1", 100.0), 0.0) is None
    assert store.budget("budget:bogo").reserved == 1
    assert store.budget("budget:bogo", 1000.0).reserved == 0
    assert store.budget("budget:bogo").released == 1


def test_a_forgotten_shoppers_reservation_still_expires(store: GuardStore) -> None:
    assert store.admit(_offer("C1", 100.0, shopper="s7"), 0.0) is None
    assert store.forget_shopper("s7") >= 1
    assert store.budget("budget:bogo", 50.0).reserved == 1  # budgets are not about shoppers
    assert store.budget("budget:bogo", 150.0) == BudgetState(1, 2.0, 0, 0.0, 0, 0.0)


def test_many_reservations_release_in_one_go(store: GuardStore) -> None:
    for i in range(1200):  # more than one release batch of the Redis script
        assert store.admit(_offer(f"C{i:04d}", 100.0 + i % 3, cost=0.1), float(i) / 100) is None
    state = store.budget("budget:bogo", 102.5)
    assert (state.issued, state.reserved, state.reserved_amount) == (1200, 0, 0.0)
    assert state.issued_amount == pytest.approx(120.0)


# --- redeem ------------------------------------------------------------------


def test_a_coupon_redeems_once(store: GuardStore) -> None:
    coupon = _coupon("C-7Q2")
    assert store.admit(Ticket(coupon.action_id, coupon=coupon), 10.5) is None
    assert store.redeem("C-7Q2", 500.0) == (coupon, None)
    assert store.redeem("C-7Q2", 501.0) == (coupon, "already_redeemed")
    assert store.redeem("C-nope", 501.0) == (None, "unknown_coupon")


def test_an_expired_coupon_is_refused(store: GuardStore) -> None:
    coupon = _coupon("C1", expires=1000.0)
    assert store.admit(Ticket("a1", coupon=coupon), 10.5) is None
    assert store.redeem("C1", 1000.001) == (coupon, "expired_coupon")
    assert store.redeem("C1", 1000.0) == (coupon, None)


def test_redemption_resets_the_shoppers_fatigue(store: GuardStore) -> None:
    def ticket(action: str, coupon: CouponRecord | None = None) -> Ticket:
        return Ticket(
            action,
            fatigue_key=fatigue_key("s1"),
            fatigue_streak=2,
            fatigue_backoff_s=WEEK,
            coupon=coupon,
        )

    assert store.admit(ticket("a1", _coupon("C1")), 1.0) is None
    assert store.admit(ticket("a2", _coupon("C2")), 2.0) is None
    assert store.admit(ticket("a3"), 3.0) == "fatigue"
    assert store.redeem("C1", 4.0)[1] is None
    assert store.admit(ticket("a3"), 5.0) is None


# --- privacy -----------------------------------------------------------------


def _leave_traces(store: GuardStore, shopper: str) -> None:
    """Five keys about ``shopper`` (seen, action, cap, cooldown, fatigue) and a coupon."""
    assert store.first_seen(f"visit:s001:{shopper}", DAY, 0.0)
    coupon = _coupon(f"C-{shopper}", shopper)
    ticket = Ticket(
        coupon.action_id,
        counters=(_cap(f"cap:bogo:{shopper}", 1, DAY),),
        cooldown_key=f"cooldown:{shopper}:bogo",
        cooldown_s=600.0,
        budget_key="budget:spring",
        fatigue_key=fatigue_key(shopper),
        fatigue_streak=1,
        fatigue_backoff_s=WEEK,
        coupon=coupon,
    )
    assert store.admit(ticket, 0.0) is None


def _traces_left(store: GuardStore, shopper: str) -> list[str]:
    """Which of the traces of ``_leave_traces`` still hold.

    Probing records where a trace is gone (first_seen, and the fatigue probe
    that no later check can refuse), so call it last for a shopper.
    """
    left = []
    if not store.first_seen(f"visit:s001:{shopper}", DAY, 1.0):
        left.append("seen")
    # An empty budget refuses whatever passes the limit under test: no recording.
    cap = (_cap(f"cap:bogo:{shopper}", 1, DAY),)
    cooldown = f"cooldown:{shopper}:bogo"
    probes = {
        "cap": Ticket("probe", counters=cap, budget_key="budget:empty", budget_coupons=0),
        "cooldown": Ticket(
            "probe", cooldown_key=cooldown, budget_key="budget:empty", budget_coupons=0
        ),
        "fatigue": Ticket(
            f"probe:{shopper}",
            fatigue_key=fatigue_key(shopper),
            fatigue_streak=1,
            fatigue_backoff_s=WEEK,
        ),
    }
    for name, probe in probes.items():
        if store.admit(probe, 1.0) == name:
            left.append(name)
    if store.redeem(f"C-{shopper}", 1.0)[0] is not None:
        left.append("coupon")
    return left


def test_forget_shopper_erases_every_key_about_them_and_nothing_else(store: GuardStore) -> None:
    for shopper in ("s1", "s10", "s2"):
        _leave_traces(store, shopper)
    assert store.forget_shopper("s1") == 6
    assert store.forget_shopper("s1") == 0
    assert store.budget("budget:spring").coupons == 3
    assert _traces_left(store, "s10") == ["seen", "cap", "cooldown", "fatigue", "coupon"]
    assert _traces_left(store, "s2") == ["seen", "cap", "cooldown", "fatigue", "coupon"]
    assert _traces_left(store, "s1") == []


def test_forget_shopper_takes_glob_characters_literally(store: GuardStore) -> None:
    _leave_traces(store, "a*")
    _leave_traces(store, "ab")
    assert store.forget_shopper("a*") == 6
    assert _traces_left(store, "ab") == ["seen", "cap", "cooldown", "fatigue", "coupon"]
