"""Turn validated surface models (:mod:`floorwalker.rules.schema`) into the compiled model.

Everything that can be wrong with a file has been reported by validation; these
functions only change shape. Conditions and actions keep the order they were
written in, so decision reasons read in the marketer's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from floorwalker.rules import model as m
from floorwalker.rules.schema import (
    WEEKDAYS,
    AlertModel,
    BellSignal,
    CapModel,
    CheckoutSignal,
    ConditionsSpec,
    CouponSignal,
    DwellSignal,
    FatigueModel,
    LimitsModel,
    NearestTarget,
    OfferModel,
    PatternSpec,
    PolicyFile,
    PosItemSignal,
    RoleTarget,
    RuleFile,
    StaffAckSignal,
    TimeWindow,
    WhenSpec,
    ZoneSignal,
)


def compile_rule(spec: RuleFile, raw: dict[str, Any], source: m.SourceRef) -> m.Rule:
    """``raw`` is the YAML mapping ``spec`` was validated from; it supplies the key order."""
    return m.Rule(
        id=spec.id,
        when=_trigger(spec.when),
        actions=_actions(spec, raw),
        source=source,
        description=spec.description,
        priority=spec.priority,
        conditions=_conditions(spec.if_, raw.get("if")),
        unless=_conditions(spec.unless, raw.get("unless")),
        limits=_limits(spec.limits),
        enabled=spec.enabled,
    )


def compile_policy(spec: PolicyFile) -> m.Policy:
    return m.Policy(
        per_shopper=_caps(spec.offers_per_shopper),
        fatigue=_fatigue(spec.fatigue),
        quiet_hours=_dayparts(spec.quiet_hours),
    )


# --------------------------------------------------------------------------- triggers


def _trigger(when: WhenSpec) -> m.Trigger:
    if when.sequence is not None:
        seq = when.sequence
        return m.Sequence(_pattern(seq.first), _pattern(seq.then), seq.within, seq.by)
    if when.absence is not None:
        absence = when.absence
        return m.Absence(
            _pattern(absence.after), _pattern(absence.missing), absence.within, absence.by
        )
    if when.count is not None:
        count = when.count
        reset_on = _pattern(count.reset_on) if count.reset_on is not None else None
        return m.Count(_pattern(count.of), count.at_least, count.within, count.by, reset_on)
    return m.Single(_pattern(when))


def _pattern(spec: PatternSpec) -> m.Pattern:
    kind = next(k for k in m.SIGNAL_KINDS if getattr(spec, k) is not None)
    signal = getattr(spec, kind)
    if isinstance(signal, DwellSignal):
        return m.Pattern(kind, zone_tags=frozenset(signal.zone_tag), dwell_s=signal.at_least)
    if isinstance(signal, ZoneSignal):
        return m.Pattern(kind, zone_tags=frozenset(signal.zone_tag))
    if isinstance(signal, BellSignal):
        return m.Pattern(kind, reasons=_set(signal.reason))
    if isinstance(signal, PosItemSignal):
        return _pos_item(signal.category, signal.sku)
    if isinstance(signal, CheckoutSignal):
        return m.Pattern(kind, min_total=signal.min_total)
    if isinstance(signal, CouponSignal):
        return m.Pattern(kind, offers=_set(signal.offer))
    if isinstance(signal, StaffAckSignal):
        return m.Pattern(kind, ack_actions=_set(signal.action))
    return m.Pattern(kind)


def _pos_item(categories: list[str] | None, skus: list[str] | None) -> m.Pattern:
    return m.Pattern("pos_item", categories=_set(categories), skus=_set(skus))


def _set(values: Iterable[str] | None) -> frozenset[str]:
    return frozenset(values or ())


# --------------------------------------------------------------------------- conditions


def _daypart(window: TimeWindow) -> m.Daypart:
    return m.Daypart(start_min=window.start, end_min=window.end)


_CONDITIONS: dict[str, Callable[[Any], m.Condition]] = {
    "tier": lambda v: m.TierIn(frozenset(v)),
    "segment": lambda v: m.SegmentIn(frozenset(v)),
    "consent": lambda v: m.MarketingConsent(required=v.marketing),
    "birthday_within_days": lambda v: m.BirthdayWithin(days=v),
    "first_visit": lambda v: m.FirstVisit(expected=v),
    "days_since_last_visit": lambda v: m.DaysSinceLastVisit(v.at_least, v.at_most),
    "lifetime_value": lambda v: m.LifetimeValue(v.at_least, v.at_most),
    "daypart": _daypart,
    "days": lambda v: m.DaysOfWeek(frozenset(WEEKDAYS.index(day) for day in v)),
    "campaign": lambda v: m.Campaign(v.start, v.end),
    "bought": lambda v: m.Bought(_pos_item(v.category, v.sku), v.within),
    "staff_in_zone": lambda v: m.StaffInZone(expected=v),
}


def _conditions(spec: ConditionsSpec | None, raw: Any) -> tuple[m.NamedCondition, ...]:
    if spec is None or not isinstance(raw, dict):
        return ()
    # `tier:` with no value says nothing; validation let it through as "not given".
    written = [name for name in raw if getattr(spec, name, None) is not None]
    return tuple(m.NamedCondition(n, _CONDITIONS[n](getattr(spec, n))) for n in written)


def _dayparts(windows: list[TimeWindow]) -> tuple[m.Daypart, ...]:
    return tuple(_daypart(w) for w in windows)


# --------------------------------------------------------------------------- actions


def _actions(spec: RuleFile, raw: dict[str, Any]) -> tuple[m.ActionSpec, ...]:
    built: dict[str, m.ActionSpec] = {}
    if spec.offer is not None:
        built["offer"] = _offer(spec.offer)
    if spec.alert is not None:
        built["alert"] = _alert(spec.alert)
    return tuple(built[key] for key in raw if key in built)


def _offer(offer: OfferModel) -> m.OfferSpec:
    return m.OfferSpec(
        offer=offer.id,
        message=offer.message,
        expires_s=offer.expires,
        cost=offer.cost,
        code_prefix=offer.code_prefix,
    )


def _alert(alert: AlertModel) -> m.AlertSpec:
    return m.AlertSpec(
        to=_targets(alert.to),
        message=alert.message,
        priority=alert.priority,
        escalate=tuple(m.Escalation(step.after, _targets(step.to)) for step in alert.escalate),
        response_target_s=alert.response_target,
        include_shopper=alert.include_shopper,
        band_every_s=alert.band_every,
        group_within_s=alert.group_within,
    )


def _targets(targets: Sequence[str | RoleTarget | NearestTarget]) -> tuple[m.Target, ...]:
    return tuple(_target(t) for t in targets)


def _target(target: str | RoleTarget | NearestTarget) -> m.Target:
    if isinstance(target, RoleTarget):
        return m.ByRole(target.role)
    if isinstance(target, NearestTarget):
        return m.Nearest(anywhere=target.nearest.anywhere)
    if target == "advisor":
        return m.Advisor()
    if target == "next":
        return m.NextNearest()
    return m.Nearest()


# --------------------------------------------------------------------------- guards


def _limits(limits: LimitsModel) -> m.Limits:
    budget = limits.budget
    return m.Limits(
        per_shopper=_caps(limits.per_shopper),
        cooldown_s=limits.cooldown,
        budget=m.Budget(budget.coupons, budget.amount) if budget is not None else None,
        quiet_hours=_dayparts(limits.quiet_hours),
        holdout=limits.holdout,
    )


def _caps(caps: list[CapModel]) -> tuple[m.Cap, ...]:
    return tuple(m.Cap(cap.count, cap.per) for cap in caps)


def _fatigue(fatigue: FatigueModel | None) -> m.Fatigue | None:
    return m.Fatigue(fatigue.streak, fatigue.backoff) if fatigue is not None else None
