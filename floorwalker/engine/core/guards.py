"""Guard state behind one small interface: dedup keys, caps, cooldowns, budgets, fatigue.

The engine asks a :class:`GuardStore` two things: "have I seen this key before?"
(inbound message ids and outbound action ids) and "may this action go out?"
(a :class:`Ticket` listing every limit it must pass, checked *and recorded*
atomically, so two workers sharing a Redis never overspend a budget). The
in-memory store here serves replay and tests; the Redis store serves runners.
All times are the engine's clock, never the wall clock.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

import orjson

from floorwalker.errors import StateError


@dataclass(frozen=True, slots=True)
class CounterLimit:
    """Increment ``key`` (expiring at ``expires_at``) only while it is below ``limit``."""

    key: str
    limit: int
    expires_at: float | None
    reason: str
    """Suppression reason when the limit is reached, e.g. ``cap`` or ``cap_all_rules``."""


@dataclass(frozen=True, slots=True)
class CouponRecord:
    code: str
    action_id: str
    rule: str
    offer: str
    store: str
    shopper: str
    issued: float
    expires: float


@dataclass(frozen=True, slots=True)
class Ticket:
    """Everything one candidate action must pass; admitted all-or-nothing."""

    action_id: str
    counters: tuple[CounterLimit, ...] = ()
    cooldown_key: str | None = None
    cooldown_s: float = 0.0
    budget_key: str | None = None
    budget_coupons: int | None = None
    budget_amount: float | None = None
    cost: float = 0.0
    fatigue_key: str | None = None
    fatigue_streak: int = 0
    fatigue_backoff_s: float = 0.0
    coupon: CouponRecord | None = None


@dataclass(frozen=True, slots=True)
class BudgetState:
    coupons: int
    amount: float


class GuardStore(Protocol):
    def first_seen(self, key: str, ttl_s: float, now: float) -> bool:
        """Record ``key``; True the first time within ``ttl_s``, False on a repeat."""
        ...

    def admit(self, ticket: Ticket, now: float) -> str | None:
        """Check and record every limit of ``ticket``; None if admitted, else the reason."""
        ...

    def redeem(self, code: str, now: float) -> tuple[CouponRecord | None, str | None]:
        """Redeem a coupon code once: (record, None), or (record|None, reason) if refused."""
        ...

    def budget(self, key: str) -> BudgetState:
        """Coupons issued and amount spent so far against a budget key."""
        ...

    def forget_shopper(self, shopper: str) -> int:
        """Erase every key about a shopper (privacy); returns how many were removed."""
        ...


class InMemoryGuardStore:
    """Single-process guard store with lazy expiry on the engine's clock."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._actions: dict[str, float] = {}
        self._counters: dict[str, tuple[int, float | None]] = {}
        self._cooldown: dict[str, float] = {}
        self._budgets: dict[str, tuple[int, float]] = {}
        self._fatigue: dict[str, tuple[int, float]] = {}
        self._coupons: dict[str, CouponRecord] = {}
        self._redeemed: set[str] = set()

    def first_seen(self, key: str, ttl_s: float, now: float) -> bool:
        until = self._seen.get(key)
        if until is not None and until > now:
            return False
        self._seen[key] = now + ttl_s
        return True

    def admit(self, ticket: Ticket, now: float) -> str | None:
        reason = self._refusal(ticket, now)
        if reason is None:
            self._record(ticket, now)
        return reason

    def _refusal(self, t: Ticket, now: float) -> str | None:
        until = self._actions.get(t.action_id)
        if until is not None and until > now:
            return "duplicate"
        if t.cooldown_key is not None and self._cooldown.get(t.cooldown_key, -1.0) > now:
            return "cooldown"
        for c in t.counters:
            if self._count(c.key, now) >= c.limit:
                return c.reason
        if t.budget_key is not None:
            coupons, amount = self._budgets.get(t.budget_key, (0, 0.0))
            if t.budget_coupons is not None and coupons + 1 > t.budget_coupons:
                return "budget"
            if t.budget_amount is not None and amount + t.cost > t.budget_amount + 1e-9:
                return "budget"
        if t.fatigue_key is not None:
            streak, last = self._fatigue.get(t.fatigue_key, (0, float("-inf")))
            if streak >= t.fatigue_streak and now - last < t.fatigue_backoff_s:
                return "fatigue"
        return None

    def _record(self, t: Ticket, now: float) -> None:
        # Keyed by the id string itself, which the coupon or alert record already holds.
        self._actions[t.action_id] = now + 7 * 86400.0
        if t.cooldown_key is not None:
            self._cooldown[t.cooldown_key] = now + t.cooldown_s
        for c in t.counters:
            self._counters[c.key] = (self._count(c.key, now) + 1, c.expires_at)
        if t.budget_key is not None:
            coupons, amount = self._budgets.get(t.budget_key, (0, 0.0))
            self._budgets[t.budget_key] = (coupons + 1, amount + t.cost)
        if t.fatigue_key is not None:
            streak, _ = self._fatigue.get(t.fatigue_key, (0, 0.0))
            self._fatigue[t.fatigue_key] = (streak + 1, now)
        if t.coupon is not None:
            self._coupons[t.coupon.code] = t.coupon

    def _count(self, key: str, now: float) -> int:
        entry = self._counters.get(key)
        if entry is None:
            return 0
        value, expires = entry
        if expires is not None and expires <= now:
            del self._counters[key]
            return 0
        return value

    def redeem(self, code: str, now: float) -> tuple[CouponRecord | None, str | None]:
        record = self._coupons.get(code)
        if record is None:
            return None, "unknown_coupon"
        if code in self._redeemed:
            return record, "already_redeemed"
        if now > record.expires:
            return record, "expired_coupon"
        self._redeemed.add(code)
        self._fatigue.pop(fatigue_key(record.shopper), None)
        return record, None

    def budget(self, key: str) -> BudgetState:
        coupons, amount = self._budgets.get(key, (0, 0.0))
        return BudgetState(coupons, amount)

    def forget_shopper(self, shopper: str) -> int:
        removed = 0
        marker = f":{shopper}:"
        for table in (self._seen, self._actions, self._counters, self._cooldown, self._fatigue):
            doomed = [k for k in table if marker in k or k.endswith(":" + shopper)]
            for k in doomed:
                del table[k]
            removed += len(doomed)
        doomed_codes = [c for c, r in self._coupons.items() if r.shopper == shopper]
        for c in doomed_codes:
            del self._coupons[c]
        return removed + len(doomed_codes)

    def snapshot(self) -> bytes:
        """Everything this store holds, as bytes (replay saves its guard state in pieces)."""
        doc = {
            "seen": self._seen,
            "actions": self._actions,
            "counters": self._counters,
            "cooldown": self._cooldown,
            "budgets": self._budgets,
            "fatigue": self._fatigue,
            "coupons": [dataclasses.astuple(c) for c in self._coupons.values()],
            "redeemed": sorted(self._redeemed),
        }
        return orjson.dumps(doc)

    def restore(self, data: bytes) -> None:
        """Replace the content with what :meth:`snapshot` wrote."""
        try:
            doc = orjson.loads(data)
            self._seen = dict(doc["seen"])
            self._actions = dict(doc["actions"])
            self._counters = {k: (v, e) for k, (v, e) in doc["counters"].items()}
            self._cooldown = dict(doc["cooldown"])
            self._budgets = {k: (n, a) for k, (n, a) in doc["budgets"].items()}
            self._fatigue = {k: (n, t) for k, (n, t) in doc["fatigue"].items()}
            coupons = [CouponRecord(*c) for c in doc["coupons"]]
            self._redeemed = set(doc["redeemed"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise StateError(f"saved guard state is damaged: {exc!r}") from exc
        self._coupons = {c.code: c for c in coupons}

    def __len__(self) -> int:
        return sum(
            len(t)
            for t in (
                self._seen,
                self._actions,
                self._counters,
                self._cooldown,
                self._fatigue,
                self._coupons,
            )
        )


def fatigue_key(shopper: str) -> str:
    """The key of a shopper's offer-fatigue streak; shared so redemption can reset it."""
    return f"fatigue:{shopper}"
