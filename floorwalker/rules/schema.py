"""The surface syntax of rule files, as pydantic models.

These models are the single source of truth for what a rule file may say: the
loader validates with them and :mod:`floorwalker.rules.schema_gen` turns them
into the JSON Schema editors use. Field descriptions are the help an editor
shows and the "what it is for" of a missing-key message, so they are written
for marketers.

Validators raise :func:`issue` errors: plain sentences (the loader prefixes the
field path) with an optional "did you mean" suggestion and, when the culprit is
below the validated value, the relative path to it. Checks that need the
vocabulary read it from the validation context (``{"vocabulary": Vocabulary}``)
and are skipped without one.
"""

from __future__ import annotations

import re
import string
from datetime import date
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from floorwalker.rules.durations import (
    DURATION_PATTERN,
    DurationError,
    format_duration,
    parse_duration,
)
from floorwalker.rules.model import (
    SEGMENTS,
    SIGNAL_KINDS,
    TIERS,
    KeyName,
    Period,
    Priority,
    Segment,
    Tier,
)
from floorwalker.rules.vocabulary import BUILTIN_ROLES, BUILTIN_ZONE_TAGS, Vocabulary, closest

ISSUE_TYPE = "floorwalker"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
TIME_PATTERN = r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"
MAX_DURATION_S = 366 * 86400.0
"""Longest duration a rule may name (a yearly cooldown fits); `1e300s` is a typo, not a plan."""
PERCENT_PATTERN = r"^[0-9]+(\.[0-9]+)?%$"
PLACEHOLDERS: tuple[str, ...] = ("zone", "bell", "reason", "category", "sku", "count", "offer")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
COMPOSITE_KINDS: tuple[str, ...] = ("sequence", "absence", "count")
ACTION_KEYS: tuple[str, ...] = ("offer", "alert")
NO_ACTION_MESSAGE = "a rule needs an action: add `offer:` or `alert:` (or both)"

AckAction = Literal["ack", "done", "decline"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def issue(
    message: str,
    *,
    suggestion: str | None = None,
    at: tuple[str | int, ...] = (),
    key: bool = False,
) -> PydanticCustomError:
    """A validation error the loader turns into a :class:`~floorwalker.errors.RuleProblem`.

    ``at`` is the path of the culprit below the validated value; ``key`` points the
    problem at that entry's key rather than its value.
    """
    ctx = {"message": message, "suggestion": suggestion, "at": at, "key": key}
    return PydanticCustomError(ISSUE_TYPE, "{message}", ctx)


def _vocabulary(info: ValidationInfo) -> Vocabulary | None:
    context = info.context
    if isinstance(context, dict):
        vocabulary = context.get("vocabulary")
        if isinstance(vocabulary, Vocabulary):
            return vocabulary
    return None


# --------------------------------------------------------------------------- scalar types


def _duration(value: Any) -> float:
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise issue(str(exc)) from exc
    if seconds > MAX_DURATION_S:
        raise issue(
            f"`{value}` is too long; a duration is at most {format_duration(MAX_DURATION_S)} "
            "(a year)"
        )
    return seconds


def _minutes(value: Any) -> int:
    if isinstance(value, str) and re.match(TIME_PATTERN, value):
        hours, minutes = value.split(":")
        return int(hours) * 60 + int(minutes)
    raise issue(f'`{value}` is not a time of day; write "HH:MM" in quotes, from "00:00" to "23:59"')


def _date(value: Any) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise issue(f"`{value}` is not a date; write YYYY-MM-DD, e.g. 2025-05-01") from None


def _fraction(value: Any) -> float:
    if isinstance(value, str) and re.match(PERCENT_PATTERN, value):
        share = float(value[:-1]) / 100
    elif isinstance(value, int | float) and not isinstance(value, bool):
        share = float(value)
    else:
        raise issue(f'`{value}` is not a share of shoppers; write a percentage like "10%" or 0.1')
    if not 0 <= share < 1:
        # `holdout: 10` almost always means ten percent.
        hint = f"{share:g}%" if 1 <= share < 100 and not isinstance(value, str) else None
        raise issue(
            f'`{value}` is not a share below 100%; write a percentage like "10%" or 0.1',
            suggestion=hint,
        )
    return share


def _slug(value: str) -> str:
    if re.match(SLUG_PATTERN, value):
        return value
    suggestion = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-") or None
    raise issue(
        f"`{value}` is not a valid id; use lowercase letters, digits and dashes",
        suggestion=suggestion,
    )


def _listify(value: Any) -> Any:
    """One value or a list of them."""
    return value if isinstance(value, list) else [value]


def _names(value: Any) -> Any:
    """Like :func:`_listify`; a SKU or category written as a number is still its name."""
    return [
        str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in _listify(value)
    ]


def _zone_tag(value: str, info: ValidationInfo) -> str:
    vocabulary = _vocabulary(info)
    if vocabulary is not None and value not in vocabulary.zone_tags:
        raise issue(
            f"`{value}` is not a known zone tag; add it to vocabulary.yaml if it is new",
            suggestion=closest(value, vocabulary.zone_tags),
        )
    return value


def _role(value: str, info: ValidationInfo) -> str:
    vocabulary = _vocabulary(info)
    if vocabulary is not None and value not in vocabulary.roles:
        raise issue(
            f"`{value}` is not a known staff role; add it to vocabulary.yaml if it is new",
            suggestion=closest(value, vocabulary.roles),
        )
    return value


def _message(value: str) -> str:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError:
        raise issue(
            "has an unmatched `{` or `}`; placeholders look like {zone}, "
            "and a brace on its own is not allowed"
        ) from None
    allowed = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
    for name in fields:
        if name not in PLACEHOLDERS:
            hint = closest(name, PLACEHOLDERS)
            raise issue(
                f"`{{{name}}}` is not a placeholder; messages may use {allowed}",
                suggestion=f"{{{hint}}}" if hint else None,
            )
    return value


def _one_or_many(item: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [item, {"type": "array", "items": item, "minItems": 1}]})


_STRING: dict[str, Any] = {"type": "string", "minLength": 1}
ZONE_TAG_TITLE = "Zone tag"
ROLE_TITLE = "Staff role"
# Examples, not an enum: a rules directory may add words in vocabulary.yaml, and the
# schema must not refuse them. Editors offer examples as completions all the same;
# `floorwalker rules init --registry` writes them with the store's own words.
_ZONE_TAG: dict[str, Any] = {
    **_STRING,
    "title": ZONE_TAG_TITLE,
    "examples": sorted(BUILTIN_ZONE_TAGS),
}
_ROLE: dict[str, Any] = {**_STRING, "title": ROLE_TITLE, "examples": sorted(BUILTIN_ROLES)}


def _enum(values: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_S},
            ],
        }
    ),
]
TimeOfDay = Annotated[
    int,
    BeforeValidator(_minutes),
    WithJsonSchema({"type": "string", "pattern": TIME_PATTERN, "examples": ["08:00"]}),
]
Day = Annotated[date, BeforeValidator(_date), WithJsonSchema({"type": "string", "format": "date"})]
Fraction = Annotated[
    float,
    BeforeValidator(_fraction),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": PERCENT_PATTERN},
                {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
            ]
        }
    ),
]
Slug = Annotated[
    str, AfterValidator(_slug), WithJsonSchema({"type": "string", "pattern": SLUG_PATTERN})
]
Message = Annotated[str, Field(min_length=1), AfterValidator(_message)]
Name = Annotated[str, Field(min_length=1)]
ZoneTags = Annotated[
    list[Annotated[str, Field(min_length=1), AfterValidator(_zone_tag)]],
    BeforeValidator(_listify),
    Field(min_length=1),
    _one_or_many(_ZONE_TAG),
]
Names = Annotated[list[Name], BeforeValidator(_names), Field(min_length=1), _one_or_many(_STRING)]
Skus = Annotated[
    list[Name],
    BeforeValidator(_names),
    Field(min_length=1),
    _one_or_many({"type": ["string", "integer"]}),
]
AckActions = Annotated[
    list[AckAction],
    BeforeValidator(_listify),
    Field(min_length=1),
    _one_or_many(_enum(get_args(AckAction))),
]
Tiers = Annotated[
    list[Tier],
    BeforeValidator(_listify),
    Field(min_length=1),
    _one_or_many(_enum(TIERS)),
]
Segments = Annotated[
    list[Segment],
    BeforeValidator(_listify),
    Field(min_length=1),
    _one_or_many(_enum(SEGMENTS)),
]
Weekdays = Annotated[
    list[Weekday], BeforeValidator(_listify), Field(min_length=1), _one_or_many(_enum(WEEKDAYS))
]


class _Model(BaseModel):
    # `.inf` and `.nan` are YAML floats; no number in a rule means either.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- patterns


class ZoneSignal(_Model):
    """The shopper enters or leaves a zone carrying one of these tags."""

    zone_tag: ZoneTags = Field(description="Zone tag, or a list of tags (any of them matches).")


class DwellSignal(_Model):
    """The shopper has stayed in a zone with one of these tags for a while."""

    zone_tag: ZoneTags = Field(description="Zone tag, or a list of tags (any of them matches).")
    at_least: Duration = Field(
        description="How long the shopper must stay in the zone before the rule fires, e.g. 10s."
    )


class VisitStartSignal(_Model):
    """The shopper's visit to the store starts (first sighting after 30 min unseen)."""


class BellSignal(_Model):
    """A service bell or "call staff" code is pressed."""

    reason: Names | None = Field(
        default=None,
        description="Only presses with this reason (help, fitting-room, checkout, complaint, ...).",
    )


class PosItemSignal(_Model):
    """A POS terminal scans an item."""

    category: Names | None = Field(default=None, description="Only items of this category.")
    sku: Skus | None = Field(default=None, description="Only items with this SKU.")


class CheckoutSignal(_Model):
    """A receipt is checked out."""

    min_total: float | None = Field(
        default=None, ge=0, description="Only receipts of at least this total."
    )


class CouponSignal(_Model):
    """A coupon is redeemed at the POS."""

    offer: Names | None = Field(default=None, description="Only coupons of this offer id.")


class StaffAckSignal(_Model):
    """A staff member answers an alert on their wristband."""

    action: AckActions | None = Field(
        default=None, description="Only these answers: ack, done, decline."
    )


SIMPLE_KINDS: tuple[str, ...] = SIGNAL_KINDS


def _exactly_one(data: Any, kinds: tuple[str, ...], what: str) -> Any:
    if not isinstance(data, dict):
        return data
    present = [k for k in data if k in kinds]
    if len(present) > 1:
        raise issue(
            f"has both `{present[0]}` and `{present[1]}`; {what}",
            at=(present[1],),
            key=True,
        )
    if not data:
        raise issue(f"is empty; name one of {', '.join(kinds)}")
    # `bell:` with nothing after it means any bell, as `bell: {}` does.
    return {k: {} if v is None and k in kinds else v for k, v in data.items()}


class PatternSpec(_Model):
    """Exactly one signal to match, e.g. `{dwell: {zone_tag: chilled, at_least: 10s}}`."""

    model_config = ConfigDict(
        title="Pattern", json_schema_extra={"minProperties": 1, "maxProperties": 1}
    )

    enter: ZoneSignal | None = Field(default=None, description="The shopper enters a zone.")
    leave: ZoneSignal | None = Field(default=None, description="The shopper leaves a zone.")
    dwell: DwellSignal | None = Field(
        default=None, description="The shopper has stayed in a zone for a while."
    )
    visit_start: VisitStartSignal | None = Field(
        default=None, description="The shopper's visit to the store starts."
    )
    bell: BellSignal | None = Field(default=None, description="A service bell is pressed.")
    pos_item: PosItemSignal | None = Field(default=None, description="An item is scanned.")
    checkout: CheckoutSignal | None = Field(default=None, description="A receipt is checked out.")
    coupon_redeemed: CouponSignal | None = Field(
        default=None, description="A coupon is redeemed at the POS."
    )
    staff_ack: StaffAckSignal | None = Field(
        default=None, description="Staff answer an alert on their wristband."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_signal(cls, data: Any) -> Any:
        return _exactly_one(data, SIMPLE_KINDS, "a pattern matches exactly one signal")


# --------------------------------------------------------------------------- triggers

_BY = "Whose signals are chained or counted: shopper, bell, zone or receipt."
_WITHIN = "How long the window is, e.g. 2m."


class SequenceSpec(_Model):
    """`first` then `then` for the same shopper (or `by`) within a window; fires on `then`."""

    model_config = ConfigDict(title="Sequence")

    first: PatternSpec = Field(description="The signal that opens the window.")
    then: PatternSpec = Field(description="The signal that completes the sequence and fires.")
    within: Duration = Field(description=_WITHIN)
    by: KeyName = Field(default="shopper", description=_BY)


class AbsenceSpec(_Model):
    """`after`, then no `missing` within a window; fires when the window closes."""

    model_config = ConfigDict(title="Absence")

    after: PatternSpec = Field(description="The signal that opens the window.")
    missing: PatternSpec = Field(description="The signal that must not follow within the window.")
    within: Duration = Field(description=_WITHIN)
    by: KeyName = Field(default="shopper", description=_BY)


class CountSpec(_Model):
    """At least `at_least` signals matching `of` within a sliding window."""

    model_config = ConfigDict(title="Count")

    of: PatternSpec = Field(description="The signal to count.")
    at_least: int = Field(ge=1, description="How many signals fire the rule, e.g. 3.")
    within: Duration = Field(description=_WITHIN)
    by: KeyName = Field(default="shopper", description=_BY)
    reset_on: PatternSpec | None = Field(
        default=None, description="A signal that starts the count afresh, e.g. a staff ack."
    )


class WhenSpec(PatternSpec):
    """What makes the rule fire: exactly one signal or one composite trigger."""

    model_config = ConfigDict(
        title="When", json_schema_extra={"minProperties": 1, "maxProperties": 1}
    )

    sequence: SequenceSpec | None = Field(
        default=None, description="One signal followed by another within a window."
    )
    absence: AbsenceSpec | None = Field(
        default=None, description="A signal not followed by another within a window."
    )
    count: CountSpec | None = Field(
        default=None, description="Several signals within a sliding window."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_signal(cls, data: Any) -> Any:
        return _exactly_one(
            data,
            (*SIMPLE_KINDS, *COMPOSITE_KINDS),
            "a rule has exactly one trigger (chain two with `sequence`)",
        )


# --------------------------------------------------------------------------- conditions


class _Range(_Model):
    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        low, high = getattr(self, "at_least", None), getattr(self, "at_most", None)
        if low is None and high is None:
            raise issue("needs `at_least`, `at_most` or both")
        if low is not None and high is not None and low > high:
            raise issue(f"`{low:g}` is more than `at_most` ({high:g})", at=("at_least",))
        return self


class DaysRange(_Range):
    """Days since the shopper's last visit."""

    at_least: float | None = Field(default=None, ge=0, description="At least this many days.")
    at_most: float | None = Field(default=None, ge=0, description="At most this many days.")


class ValueRange(_Range):
    """The shopper's lifetime spend."""

    at_least: float | None = Field(default=None, ge=0, description="At least this much.")
    at_most: float | None = Field(default=None, ge=0, description="At most this much.")


class TimeWindow(_Model):
    """Store-local times of day from `from` up to (not including) `to`; may wrap midnight."""

    start: TimeOfDay = Field(alias="from", description='Start time as "HH:MM", included.')
    end: TimeOfDay = Field(alias="to", description='End time as "HH:MM", not included.')

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start == self.end:
            raise issue("is the same time as `from`, so the window is empty", at=("to",))
        return self


class ConsentSpec(_Model):
    """The shopper's consent."""

    marketing: bool = Field(description="true: only shoppers who agreed to marketing offers.")


class CampaignSpec(_Model):
    """Store-local dates the rule runs between, both included."""

    start: Day | None = Field(default=None, description="First day, YYYY-MM-DD.")
    end: Day | None = Field(default=None, description="Last day, YYYY-MM-DD.")

    @model_validator(mode="after")
    def _ordered(self) -> CampaignSpec:
        if self.start is None and self.end is None:
            raise issue("needs `start`, `end` or both")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise issue(f"`{self.end}` is before `start` ({self.start})", at=("end",))
        return self


class BoughtSpec(_Model):
    """The shopper bought a matching item recently."""

    category: Names | None = Field(default=None, description="Item category.")
    sku: Skus | None = Field(default=None, description="Item SKU.")
    within: Duration = Field(description="How far back to look, e.g. 30m.")


class ConditionsSpec(_Model):
    """Conditions on the shopper and the moment."""

    model_config = ConfigDict(title="Conditions")

    tier: Tiers | None = Field(
        default=None, description="Loyalty tiers: member, silver, gold, vip."
    )
    segment: Segments | None = Field(
        default=None, description="Segments: loyal, growing, dormant, regular."
    )
    consent: ConsentSpec | None = Field(default=None, description="Consent the shopper gave.")
    birthday_within_days: int | None = Field(
        default=None, ge=0, le=183, description="Birthday within this many days, either side."
    )
    first_visit: bool | None = Field(
        default=None, description="true: first-time visitors only; false: returning ones only."
    )
    days_since_last_visit: DaysRange | None = Field(
        default=None, description="Days since the previous visit."
    )
    lifetime_value: ValueRange | None = Field(
        default=None, description="The shopper's lifetime spend."
    )
    daypart: TimeWindow | None = Field(default=None, description="Store-local time of day.")
    days: Weekdays | None = Field(default=None, description="Weekdays: mon, tue, ... sun.")
    campaign: CampaignSpec | None = Field(default=None, description="Campaign dates.")
    bought: BoughtSpec | None = Field(
        default=None, description="The shopper bought a matching item recently."
    )
    staff_in_zone: bool | None = Field(
        default=None, description="true: only when staff are in the zone; false: only when not."
    )


# --------------------------------------------------------------------------- actions


class OfferModel(_Model):
    """A coupon sent to the shopper's phone."""

    model_config = ConfigDict(title="Offer")

    id: Slug = Field(description="The offer's id; redeemed coupons are counted against it.")
    message: Message = Field(description="What the shopper reads; may use {zone}, {offer}, ...")
    expires: Duration = Field(description="How long the coupon stays valid, e.g. 2h.")
    cost: float = Field(
        default=0.0,
        ge=0,
        description="What one coupon costs the campaign budget: reserved when the coupon is "
        "issued, spent when it is redeemed, given back if it expires unredeemed.",
    )
    code_prefix: str = Field(default="", description="Text put in front of each coupon code.")


class RoleTarget(_Model):
    """Available staff with this role, nearest first."""

    role: Annotated[str, Field(min_length=1), AfterValidator(_role), WithJsonSchema(_ROLE)] = Field(
        description="A staff role, e.g. manager."
    )


class NearestOptions(_Model):
    anywhere: bool = Field(
        default=True, description="false: never page staff outside the zone's section."
    )


class NearestTarget(_Model):
    """The nearest available staff member, with options."""

    nearest: NearestOptions = Field(description="Options for finding the nearest staff member.")


def _target_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "target-name"
    if isinstance(value, dict):
        return "target-nearest" if "nearest" in value else "target-role"
    return None


_TARGET_HELP = "nearest, advisor, {role: NAME} or {nearest: {anywhere: false}}"
Target = Annotated[
    Annotated[Literal["nearest", "advisor"], Tag("target-name")]
    | Annotated[RoleTarget, Tag("target-role")]
    | Annotated[NearestTarget, Tag("target-nearest")],
    Discriminator(
        _target_kind, custom_error_type="target", custom_error_message=f"should be {_TARGET_HELP}"
    ),
]
EscalationTarget = Annotated[
    Annotated[Literal["nearest", "advisor", "next"], Tag("target-name")]
    | Annotated[RoleTarget, Tag("target-role")]
    | Annotated[NearestTarget, Tag("target-nearest")],
    Discriminator(
        _target_kind, custom_error_type="target", custom_error_message=f"should be {_TARGET_HELP}"
    ),
]
Targets = Annotated[
    list[Target],
    BeforeValidator(_listify, json_schema_input_type=Target | list[Target]),
    Field(min_length=1),
]
EscalationTargets = Annotated[
    list[EscalationTarget],
    BeforeValidator(_listify, json_schema_input_type=EscalationTarget | list[EscalationTarget]),
    Field(min_length=1),
]


class EscalationModel(_Model):
    """Who to alert next if nobody has answered yet."""

    model_config = ConfigDict(title="Escalation")

    after: Duration = Field(description="Time since the alert was raised, e.g. 30s.")
    to: EscalationTargets = Field(
        description="Who: next (the nearest staff member not yet alerted), nearest, advisor "
        "or {role: NAME}; a list is tried in order."
    )


class AlertModel(_Model):
    """An alert on a staff wristband."""

    model_config = ConfigDict(title="Alert")

    to: Targets = Field(
        description=f"Who: {_TARGET_HELP}; a list is tried in order until someone is available."
    )
    message: Message = Field(description="What staff read; may use {zone}, {count}, ...")
    priority: Priority = Field(default="normal", description="low, normal, high or urgent.")
    escalate: list[EscalationModel] = Field(
        default_factory=list, description="Further steps, in increasing `after` order."
    )
    response_target: Duration | None = Field(
        default=None, description="How fast staff should answer, for reports, e.g. 2m."
    )
    include_shopper: bool = Field(
        default=True, description="Show the shopper's tier and segment (never personal data)."
    )
    band_every: Duration | None = Field(
        default=None,
        description="Page one band with this rule at most once per this long, e.g. 2m: "
        "the next nearest band is paged instead (spreads greetings over the staff).",
    )
    group_within: Duration | None = Field(
        default=None,
        description="One alert for everything this rule raises in one zone within this "
        "long, e.g. 30s: shoppers arriving together get one greeting.",
    )

    @field_validator("escalate")
    @classmethod
    def _increasing(cls, steps: list[EscalationModel]) -> list[EscalationModel]:
        for i in range(1, len(steps)):
            if steps[i].after <= steps[i - 1].after:
                raise issue(
                    f"must be later than the step before it ({format_duration(steps[i - 1].after)})"
                    "; every `after` counts from the alert, so each step waits longer",
                    at=(i, "after"),
                )
        return steps


# --------------------------------------------------------------------------- limits


class CapModel(_Model):
    """At most `count` per `per`."""

    model_config = ConfigDict(title="Cap")

    count: int = Field(ge=1, description="How many.")
    per: Period = Field(description="hour, day, week, month, visit or campaign.")


class BudgetModel(_Model):
    """The campaign's budget, shared by every store. Each coupon issued reserves its cost
    (and one coupon); a redemption spends the reservation; a coupon that expires
    unredeemed gives it back. Offers stop while reserved + spent would pass a limit."""

    model_config = ConfigDict(title="Budget", json_schema_extra={"minProperties": 1})

    coupons: int | None = Field(
        default=None,
        ge=1,
        description="How many coupons may be out or redeemed at once (expired ones come back).",
    )
    amount: float | None = Field(
        default=None,
        gt=0,
        description="Most money reserved (coupons out) plus spent (coupons redeemed), "
        "in the offers' `cost` unit.",
    )

    @model_validator(mode="after")
    def _something(self) -> BudgetModel:
        if self.coupons is None and self.amount is None:
            raise issue("needs `coupons`, `amount` or both")
        return self


QuietHours = Annotated[
    list[TimeWindow],
    BeforeValidator(_listify, json_schema_input_type=TimeWindow | list[TimeWindow]),
]


class LimitsModel(_Model):
    """How often the rule may act."""

    model_config = ConfigDict(title="Limits")

    per_shopper: list[CapModel] = Field(
        default_factory=list, description="Caps per shopper, e.g. [{count: 1, per: day}]."
    )
    cooldown: Duration | None = Field(
        default=None, description="Quiet time for a shopper after the rule acts, e.g. 1h."
    )
    budget: BudgetModel | None = Field(default=None, description="The campaign's budget.")
    quiet_hours: QuietHours = Field(
        default_factory=list, description='Times the rule stays silent, {from: "HH:MM", to: ...}.'
    )
    holdout: Fraction = Field(
        default=0.0, description='Share of shoppers who never get it, to measure lift, e.g. "10%".'
    )


# --------------------------------------------------------------------------- files


class RuleFile(_Model):
    """One Floorwalker rule: when something happens on the floor, if conditions hold, act."""

    model_config = ConfigDict(
        title="Floorwalker rule",
        json_schema_extra={"anyOf": [{"required": ["offer"]}, {"required": ["alert"]}]},
    )

    id: Slug = Field(
        description="The rule's unique name: lowercase letters, digits and dashes, "
        "e.g. chilled-dwell-bogo."
    )
    description: str = Field(default="", description="What the rule is for, in a sentence.")
    priority: int = Field(
        default=0, description="Higher wins when several offers compete for one moment."
    )
    enabled: bool = Field(default=True, description="false: keep the rule but never fire it.")
    when: WhenSpec = Field(
        description="What makes the rule fire, e.g. `dwell: {zone_tag: chilled, at_least: 10s}`."
    )
    if_: ConditionsSpec | None = Field(
        default=None, alias="if", description="Conditions that must all hold."
    )
    unless: ConditionsSpec | None = Field(
        default=None, description="Conditions that each suppress the rule."
    )
    offer: OfferModel | None = Field(default=None, description="A coupon for the shopper.")
    alert: AlertModel | None = Field(default=None, description="An alert for staff.")
    limits: LimitsModel = Field(
        default_factory=LimitsModel, description="Caps, cooldown, budget, quiet hours, holdout."
    )

    @model_validator(mode="after")
    def _acts(self) -> RuleFile:
        if self.offer is None and self.alert is None:
            raise issue(NO_ACTION_MESSAGE)
        return self


def _fatigue_off(value: Any) -> Any:
    # `off` is YAML for false; both switch fatigue control off.
    return None if value is False or value == "off" else value


class FatigueModel(_Model):
    """After `streak` offers in a row not redeemed, at most one offer per `backoff`."""

    model_config = ConfigDict(title="Fatigue")

    streak: int = Field(default=3, ge=1, description="Offers in a row not redeemed.")
    backoff: Duration = Field(
        default="7d", validate_default=True, description="Then at most one offer per this long."
    )


class PolicyFile(_Model):
    """Guards for every rule of a rules directory (policy.yaml)."""

    model_config = ConfigDict(title="Floorwalker rule policy")

    offers_per_shopper: list[CapModel] = Field(
        default=[{"count": 3, "per": "day"}],
        validate_default=True,
        description="Offers to one shopper across all rules.",
    )
    fatigue: Annotated[
        FatigueModel | None,
        BeforeValidator(_fatigue_off, json_schema_input_type=FatigueModel | Literal["off", False]),
    ] = Field(
        default_factory=FatigueModel,
        description="Back off from shoppers who ignore offers; `off` to switch it off.",
    )
    quiet_hours: QuietHours = Field(
        default_factory=list, description="Times no rule sends an offer."
    )


class VocabularyFile(_Model):
    """Zone tags and staff roles this rules directory may use besides the built-in ones."""

    model_config = ConfigDict(title="Floorwalker rule vocabulary")

    zone_tags: list[Name] = Field(default_factory=list, description="More zone tags.")
    roles: list[Name] = Field(default_factory=list, description="More staff roles.")
