"""The compiled rule model: what a rule file means, independent of YAML.

The parser (:mod:`floorwalker.rules.loader`) turns files into these frozen values
once, at load; the engine indexes them and evaluates them many times. Durations
are seconds, times of day are minutes after local midnight, percentages are
fractions (0.1 = 10 %).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any, Literal

SignalKind = Literal[
    "enter",
    "leave",
    "dwell",
    "visit_start",
    "bell",
    "pos_item",
    "checkout",
    "coupon_redeemed",
    "staff_ack",
]
SIGNAL_KINDS: tuple[SignalKind, ...] = (
    "enter",
    "leave",
    "dwell",
    "visit_start",
    "bell",
    "pos_item",
    "checkout",
    "coupon_redeemed",
    "staff_ack",
)
KeyName = Literal["shopper", "bell", "zone", "receipt"]
Period = Literal["hour", "day", "week", "month", "visit", "campaign"]
Priority = Literal["low", "normal", "high", "urgent"]
Tier = Literal["member", "silver", "gold", "vip"]
Segment = Literal["loyal", "growing", "dormant", "regular"]
TIERS: tuple[Tier, ...] = ("member", "silver", "gold", "vip")
SEGMENTS: tuple[Segment, ...] = ("loyal", "growing", "dormant", "regular")


@dataclass(frozen=True, slots=True)
class SourceRef:
    file: str
    line: int
    col: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


# --------------------------------------------------------------------------- patterns


@dataclass(frozen=True, slots=True)
class Pattern:
    """Matches one signal. Empty sets mean "any"."""

    kind: SignalKind
    zone_tags: frozenset[str] = frozenset()
    """enter / leave / dwell / bell: the zone carries at least one of these tags."""
    dwell_s: float = 0.0
    """dwell: fires when the shopper has been in the zone this long."""
    reasons: frozenset[str] = frozenset()
    """bell: press reason is one of these."""
    categories: frozenset[str] = frozenset()
    """pos_item: item category is one of these."""
    skus: frozenset[str] = frozenset()
    """pos_item: item sku is one of these."""
    min_total: float | None = None
    """checkout: receipt total at least this."""
    offers: frozenset[str] = frozenset()
    """coupon_redeemed: the redeemed coupon belongs to one of these offer ids."""
    ack_actions: frozenset[str] = frozenset()
    """staff_ack: the answer is one of these (ack, done, decline)."""


# --------------------------------------------------------------------------- triggers


@dataclass(frozen=True, slots=True)
class Single:
    """Fires on each signal matching ``pattern``."""

    pattern: Pattern


@dataclass(frozen=True, slots=True)
class Sequence:
    """``first`` then ``then`` for the same key within ``within_s``; fires on ``then``."""

    first: Pattern
    then: Pattern
    within_s: float
    by: KeyName = "shopper"


@dataclass(frozen=True, slots=True)
class Absence:
    """``after`` and then no ``missing`` for the same key within ``within_s``.

    Fires when the window closes (a timer), with the context of ``after``.
    A second ``after`` while one is pending does not restart the window.
    """

    after: Pattern
    missing: Pattern
    within_s: float
    by: KeyName = "shopper"


@dataclass(frozen=True, slots=True)
class Count:
    """At least ``at_least`` signals matching ``of`` for one key in a sliding ``within_s``.

    Fires on the signal that reaches the count, then starts counting afresh.
    A signal matching ``reset_on`` for the same key clears the count.
    """

    of: Pattern
    at_least: int
    within_s: float
    by: KeyName = "shopper"
    reset_on: Pattern | None = None


Trigger = Single | Sequence | Absence | Count


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class TierIn:
    tiers: frozenset[str]


@dataclass(frozen=True, slots=True)
class SegmentIn:
    segments: frozenset[str]


@dataclass(frozen=True, slots=True)
class MarketingConsent:
    required: bool = True


@dataclass(frozen=True, slots=True)
class BirthdayWithin:
    """Store-local date within ``days`` of the shopper's birthday (either side)."""

    days: int


@dataclass(frozen=True, slots=True)
class FirstVisit:
    """No profile, or a profile without ``first_visit`` (and no visit seen by the engine)."""

    expected: bool = True


@dataclass(frozen=True, slots=True)
class DaysSinceLastVisit:
    at_least: float | None = None
    at_most: float | None = None


@dataclass(frozen=True, slots=True)
class LifetimeValue:
    at_least: float | None = None
    at_most: float | None = None


@dataclass(frozen=True, slots=True)
class Daypart:
    """Store-local time of day in [start, end) minutes; wraps midnight when start > end."""

    start_min: int
    end_min: int


@dataclass(frozen=True, slots=True)
class DaysOfWeek:
    """Store-local weekdays, 0 = Monday."""

    days: frozenset[int]


@dataclass(frozen=True, slots=True)
class Campaign:
    """Store-local dates, inclusive."""

    start: date | None = None
    end: date | None = None


@dataclass(frozen=True, slots=True)
class Bought:
    """The same shopper had a POS item matching ``pattern`` in the last ``within_s``."""

    pattern: Pattern
    within_s: float


@dataclass(frozen=True, slots=True)
class StaffInZone:
    """Some staff band is currently present in the trigger's zone."""

    expected: bool = True


Condition = (
    TierIn
    | SegmentIn
    | MarketingConsent
    | BirthdayWithin
    | FirstVisit
    | DaysSinceLastVisit
    | LifetimeValue
    | Daypart
    | DaysOfWeek
    | Campaign
    | Bought
    | StaffInZone
)


@dataclass(frozen=True, slots=True)
class NamedCondition:
    """A condition with the YAML key it came from, for decision reasons (``condition:tier``)."""

    name: str
    condition: Condition


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class OfferSpec:
    offer: str
    message: str
    expires_s: float
    cost: float = 0.0
    code_prefix: str = ""


@dataclass(frozen=True, slots=True)
class Nearest:
    """Nearest available band: in the zone, then adjacent zones (by hops), then the
    zone's section, then anywhere in the store (only if ``anywhere``)."""

    anywhere: bool = True


@dataclass(frozen=True, slots=True)
class ByRole:
    """Available bands of this role, nearest first."""

    role: str


@dataclass(frozen=True, slots=True)
class Advisor:
    """The shopper's dedicated advisor band (profile ``advisor``)."""


@dataclass(frozen=True, slots=True)
class NextNearest:
    """In an escalation: the nearest available band not yet alerted for this alert."""


Target = Nearest | ByRole | Advisor | NextNearest


@dataclass(frozen=True, slots=True)
class Escalation:
    after_s: float
    """Measured from the alert's creation (the triggering moment)."""
    to: tuple[Target, ...]
    """Tried in order; the first target with an available band wins."""


@dataclass(frozen=True, slots=True)
class AlertSpec:
    to: tuple[Target, ...]
    message: str
    priority: str = "normal"
    escalate: tuple[Escalation, ...] = ()
    response_target_s: float | None = None
    include_shopper: bool = True
    """Attach the shopper summary (tier, segment), never raw personal data."""
    band_every_s: float | None = None
    """Page one band with this rule at most once per this long (share the load)."""
    group_within_s: float | None = None
    """One alert per zone for everything the rule raises within this long."""


ActionSpec = OfferSpec | AlertSpec


# --------------------------------------------------------------------------- guards


@dataclass(frozen=True, slots=True)
class Cap:
    count: int
    period: Period


@dataclass(frozen=True, slots=True)
class Budget:
    coupons: int | None = None
    amount: float | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    per_shopper: tuple[Cap, ...] = ()
    cooldown_s: float | None = None
    budget: Budget | None = None
    quiet_hours: tuple[Daypart, ...] = ()
    holdout: float = 0.0


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    when: Trigger
    actions: tuple[ActionSpec, ...]
    source: SourceRef
    description: str = ""
    priority: int = 0
    """Higher wins when several offers compete for the same shopper at the same moment."""
    conditions: tuple[NamedCondition, ...] = ()
    unless: tuple[NamedCondition, ...] = ()
    limits: Limits = field(default_factory=Limits)
    enabled: bool = True

    @property
    def has_offer(self) -> bool:
        return any(isinstance(a, OfferSpec) for a in self.actions)


@dataclass(frozen=True, slots=True)
class Fatigue:
    """After ``streak`` offers in a row not redeemed, at most one offer per ``backoff_s``."""

    streak: int = 3
    backoff_s: float = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class Policy:
    """Rules-directory-wide guards (``policy.yaml``); they apply across all rules."""

    per_shopper: tuple[Cap, ...] = (Cap(count=3, period="day"),)
    """Offers to one shopper across all rules."""
    fatigue: Fatigue | None = field(default_factory=Fatigue)
    quiet_hours: tuple[Daypart, ...] = ()


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    policy: Policy = field(default_factory=Policy)

    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    @cached_property
    def fingerprint(self) -> str:
        """Stable across processes: tells a store snapshot whether it was taken under these
        rules. Worked out once per rule set (every store and engine built from it shares
        it), not once per restore."""
        text = repr(canonical((self.rules, self.policy)))
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def canonical(value: Any) -> Any:
    """A value's content as nested tuples, sets sorted: a repr that no hash seed changes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (type(value).__name__, *(canonical(getattr(value, f.name)) for f in fields))
    if isinstance(value, frozenset | set):
        return ("set", *sorted((canonical(v) for v in value), key=repr))
    if isinstance(value, tuple | list):
        return tuple(canonical(v) for v in value)
    if isinstance(value, dict):
        return ("dict", *sorted(((repr(k), canonical(v)) for k, v in value.items())))
    return value
