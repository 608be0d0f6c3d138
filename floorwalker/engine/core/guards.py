"""Guard state behind one small interface: dedup keys, caps, cooldowns, budgets, fatigue.

The engine asks a :class:`GuardStore` two things: "have I seen this key before?"
(inbound message ids and outbound action ids) and "may this action go out?"
(a :class:`Ticket` listing every limit it must pass, checked *and recorded*
atomically, so two workers sharing a Redis never overspend a budget). The
in-memory store here serves replay and tests; the Redis store serves runners.
All times are the engine's clock, never the wall clock.

Budgets (a rule's ``limits.budget``: ``coupons`` and/or ``amount``) work by
reservation:

* an offer **reserves** its ``cost`` (and one coupon) when it is issued;
* a redemption turns that reservation into **spent**;
* a coupon that **expires unredeemed** releases it: the money and the coupon
  slot go back to the budget. Release is lazy: it happens the next time the
  budget is looked at (an admit or :meth:`GuardStore.budget`) with the engine
  clock past the coupon's ``expires``;
* an offer is admitted only while ``reserved + spent`` plus its own charge stays
  within the budget. ``remaining = budget - reserved - spent``.

So a campaign never promises more than it can pay for, and coupons nobody used
do not eat it up. A charge without a coupon (a ticket with a budget but no
coupon record) stays reserved for good.
"""

from __future__ import annotations

import dataclasses
import heapq
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import orjson

from floorwalker.errors import StateError


class CounterLimit(NamedTuple):
    """Increment ``key`` (expiring at ``expires_at``) only while it is below ``limit``.

    This and :class:`Ticket` are named tuples, not frozen dataclasses: one is built
    per candidate action, and a frozen dataclass sets each field through
    ``object.__setattr__`` (a twelve-field ticket cost more than the guard check).
    """

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
    cost: float = 0.0
    """What a redemption costs (the offer's ``cost``): what it spends of a budget."""


class Ticket(NamedTuple):
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
    """Where a budget stands: what was issued, what is still reserved, what was spent.

    ``released`` (issued, then expired unredeemed) is what is left of issued."""

    issued: int = 0
    issued_amount: float = 0.0
    reserved: int = 0
    """Coupons issued, not redeemed, not expired yet."""
    reserved_amount: float = 0.0
    spent: int = 0
    """Coupons redeemed."""
    spent_amount: float = 0.0

    @property
    def coupons(self) -> int:
        """Coupons counted against the budget: reserved + spent."""
        return self.reserved + self.spent

    @property
    def amount(self) -> float:
        """Money counted against the budget: reserved + spent."""
        return self.reserved_amount + self.spent_amount

    @property
    def released(self) -> int:
        return self.issued - self.reserved - self.spent

    @property
    def released_amount(self) -> float:
        return max(0.0, self.issued_amount - self.reserved_amount - self.spent_amount)


@dataclass(slots=True)
class _Budget:
    """The in-memory store's running budget, with its reservations by coupon code."""

    issued: int = 0
    issued_amount: float = 0.0
    reserved: int = 0
    reserved_amount: float = 0.0
    spent: int = 0
    spent_amount: float = 0.0
    holds: dict[str, tuple[float, float]] = field(default_factory=dict)
    """coupon code -> (expires, cost) of each reservation that may still be released"""
    expiry: list[tuple[float, str]] = field(default_factory=list)
    """a heap of (expires, code); entries of redeemed coupons are skipped when popped"""

    def state(self) -> BudgetState:
        return BudgetState(
            self.issued,
            self.issued_amount,
            self.reserved,
            self.reserved_amount,
            self.spent,
            self.spent_amount,
        )

    def fits(self, t: Ticket) -> bool:
        used = self.reserved + self.spent
        if t.budget_coupons is not None and used + 1 > t.budget_coupons:
            return False
        money = self.reserved_amount + self.spent_amount
        return t.budget_amount is None or money + t.cost <= t.budget_amount + 1e-9

    def reserve(self, cost: float, coupon: CouponRecord | None) -> None:
        self.issued += 1
        self.issued_amount += cost
        self.reserved += 1
        self.reserved_amount += cost
        if coupon is not None:
            self.holds[coupon.code] = (coupon.expires, cost)
            heapq.heappush(self.expiry, (coupon.expires, coupon.code))

    def release_expired(self, now: float) -> None:
        """Give back what coupons expired unredeemed reserved (valid while now <= expires)."""
        expiry, holds = self.expiry, self.holds
        while expiry and expiry[0][0] < now:
            _, code = heapq.heappop(expiry)
            held = holds.pop(code, None)
            if held is not None:
                self._unreserve(held[1])

    def spend(self, code: str, cost: float) -> None:
        """A redemption: the coupon's reservation (if not released yet) becomes spent."""
        held = self.holds.pop(code, None)
        if held is not None:
            self._unreserve(held[1])
            cost = held[1]
        self.spent += 1
        self.spent_amount += cost

    def _unreserve(self, cost: float) -> None:
        self.reserved -= 1
        # Back to exactly zero when nothing is held: no float dust accumulates.
        self.reserved_amount = self.reserved_amount - cost if self.reserved > 0 else 0.0

    def to_json(self) -> list[object]:
        holds = [[code, exp, cost] for code, (exp, cost) in sorted(self.holds.items())]
        return [
            self.issued,
            self.issued_amount,
            self.reserved,
            self.reserved_amount,
            self.spent,
            self.spent_amount,
            holds,
        ]

    @classmethod
    def from_json(cls, doc: list[object]) -> _Budget:
        if len(doc) == 2:  # written before reservations: everything charged stays reserved
            n, amount = int(doc[0]), float(doc[1])  # type: ignore[call-overload, arg-type]
            return cls(issued=n, issued_amount=amount, reserved=n, reserved_amount=amount)
        issued, issued_amount, reserved, reserved_amount, spent, spent_amount, holds = doc
        b = cls(
            int(issued),  # type: ignore[call-overload]
            float(issued_amount),  # type: ignore[arg-type]
            int(reserved),  # type: ignore[call-overload]
            float(reserved_amount),  # type: ignore[arg-type]
            int(spent),  # type: ignore[call-overload]
            float(spent_amount),  # type: ignore[arg-type]
        )
        for code, exp, cost in holds:  # type: ignore[attr-defined]
            b.holds[str(code)] = (float(exp), float(cost))
            b.expiry.append((float(exp), str(code)))
        heapq.heapify(b.expiry)
        return b


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

    def budget(self, key: str, now: float | None = None) -> BudgetState:
        """Where a budget stands; with ``now``, after releasing coupons expired by then."""
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
        self._budgets: dict[str, _Budget] = {}
        self._coupon_budget: dict[str, str] = {}
        """coupon code -> the budget key its offer was charged to"""
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
            budget = self._budgets.get(t.budget_key)
            if budget is not None:
                budget.release_expired(now)
                if not budget.fits(t):
                    return "budget"
            elif not _Budget().fits(t):
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
            self._budgets.setdefault(t.budget_key, _Budget()).reserve(t.cost, t.coupon)
            if t.coupon is not None:
                self._coupon_budget[t.coupon.code] = t.budget_key
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
        charged = self._coupon_budget.pop(code, None)
        if charged is not None:
            self._budgets.setdefault(charged, _Budget()).spend(code, record.cost)
        return record, None

    def budget(self, key: str, now: float | None = None) -> BudgetState:
        budget = self._budgets.get(key)
        if budget is None:
            return BudgetState()
        if now is not None:
            budget.release_expired(now)
        return budget.state()

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
            # The budget keeps the reservation (released at expiry): budgets are not
            # about shoppers; only the link from the code goes.
            self._coupon_budget.pop(c, None)
        return removed + len(doomed_codes)

    def snapshot(self) -> bytes:
        """Everything this store holds, as bytes (replay saves its guard state in pieces)."""
        doc = {
            "seen": self._seen,
            "actions": self._actions,
            "counters": self._counters,
            "cooldown": self._cooldown,
            "budgets": {k: b.to_json() for k, b in self._budgets.items()},
            "coupon_budget": self._coupon_budget,
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
            self._budgets = {k: _Budget.from_json(b) for k, b in doc["budgets"].items()}
            self._coupon_budget = dict(doc.get("coupon_budget", {}))
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


def budget_key(rule: str) -> str:
    """The guard key of a rule's campaign budget: one per rule, shared by every store."""
    return f"budget:{rule}"


def fatigue_key(shopper: str) -> str:
    """The key of a shopper's offer-fatigue streak; shared so redemption can reset it."""
    return f"fatigue:{shopper}"
