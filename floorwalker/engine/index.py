"""Rules compiled into per-store dispatch tables.

Every pattern a rule listens to (its trigger, the parts of a composite, the
``bought`` history it checks) becomes a :class:`Listener` filed under the exact
key an event will look up: a zone id for presence patterns (zone tags are
resolved against each store's registry once, here), a reason for bells, a
category or sku for POS items, an answer for staff acks. An event therefore
costs a couple of dict lookups whatever the number of rules; only listeners
that can actually match are visited.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from floorwalker.devices.registry import Registry
from floorwalker.rules.model import (
    Absence,
    Bought,
    Count,
    Pattern,
    Rule,
    RuleSet,
    Sequence,
    Single,
)

_K = TypeVar("_K")

# Listener roles: what a matched signal does to the rule that listens.
FIRE = 0
SEQ_FIRST = 1
SEQ_THEN = 2
ABS_AFTER = 3
ABS_MISSING = 4
COUNT_OF = 5
COUNT_RESET = 6
BOUGHT = 7


class Listener(NamedTuple):
    role: int
    rule: Rule | None
    pattern: Pattern
    slot: int
    """For BOUGHT: the history slot this pattern records into."""


Listeners = tuple[Listener, ...]
EMPTY: Listeners = ()


@dataclass(frozen=True)
class StoreIndex:
    enter: Mapping[str, Listeners]
    leave: Mapping[str, Listeners]
    dwell: Mapping[str, tuple[tuple[float, Listeners], ...]]
    """zone -> (threshold seconds, listeners) ascending"""
    visit: Listeners
    bell: Mapping[str | None, Listeners]
    """reason -> listeners; key None holds the patterns for any reason"""
    pos_category: Mapping[str, Listeners]
    pos_sku: Mapping[str, Listeners]
    pos_any: Listeners
    checkout: Listeners
    coupon: Mapping[str | None, Listeners]
    ack: Mapping[str | None, Listeners]


@dataclass(frozen=True)
class CompiledRules:
    ruleset: RuleSet
    stores: Mapping[str, StoreIndex]
    rules: Mapping[str, Rule]
    bought_slots: Mapping[Bought, int]


def compile_rules(ruleset: RuleSet, registries: Mapping[str, Registry]) -> CompiledRules:
    rules = [r for r in ruleset.rules if r.enabled]
    slots: dict[Bought, int] = {}
    listeners: list[Listener] = []
    for rule in rules:
        listeners.extend(_rule_listeners(rule))
        for named in (*rule.conditions, *rule.unless):
            cond = named.condition
            if isinstance(cond, Bought) and cond not in slots:
                slots[cond] = len(slots)
                listeners.append(Listener(BOUGHT, None, cond.pattern, slots[cond]))
    stores = {sid: _store_index(reg, listeners) for sid, reg in registries.items()}
    return CompiledRules(ruleset, stores, {r.id: r for r in rules}, slots)


def _rule_listeners(rule: Rule) -> Iterable[Listener]:
    trig = rule.when
    if isinstance(trig, Single):
        yield Listener(FIRE, rule, trig.pattern, 0)
    elif isinstance(trig, Sequence):
        yield Listener(SEQ_FIRST, rule, trig.first, 0)
        yield Listener(SEQ_THEN, rule, trig.then, 0)
    elif isinstance(trig, Absence):
        yield Listener(ABS_AFTER, rule, trig.after, 0)
        yield Listener(ABS_MISSING, rule, trig.missing, 0)
    elif isinstance(trig, Count):
        yield Listener(COUNT_OF, rule, trig.of, 0)
        if trig.reset_on is not None:
            yield Listener(COUNT_RESET, rule, trig.reset_on, 0)


def _zones_for(pattern: Pattern, registry: Registry) -> Iterable[str]:
    if not pattern.zone_tags:
        return registry.zones.keys()
    found: set[str] = set()
    for tag in pattern.zone_tags:
        found |= registry.zones_by_tag.get(tag, frozenset())
    return sorted(found)


def _store_index(registry: Registry, listeners: list[Listener]) -> StoreIndex:
    enter: dict[str, list[Listener]] = defaultdict(list)
    leave: dict[str, list[Listener]] = defaultdict(list)
    dwell: dict[str, dict[float, list[Listener]]] = defaultdict(lambda: defaultdict(list))
    visit: list[Listener] = []
    bell: dict[str | None, list[Listener]] = defaultdict(list)
    pos_cat: dict[str, list[Listener]] = defaultdict(list)
    pos_sku: dict[str, list[Listener]] = defaultdict(list)
    pos_any: list[Listener] = []
    checkout: list[Listener] = []
    coupon: dict[str | None, list[Listener]] = defaultdict(list)
    ack: dict[str | None, list[Listener]] = defaultdict(list)
    for lst in listeners:
        p = lst.pattern
        if p.kind in ("enter", "leave", "dwell"):
            for zone in _zones_for(p, registry):
                if p.kind == "enter":
                    enter[zone].append(lst)
                elif p.kind == "leave":
                    leave[zone].append(lst)
                else:
                    dwell[zone][p.dwell_s].append(lst)
        elif p.kind == "visit_start":
            visit.append(lst)
        elif p.kind == "bell":
            for reason in p.reasons or (None,):
                bell[reason].append(lst)
        elif p.kind == "pos_item":
            if p.categories:
                for cat in p.categories:
                    pos_cat[cat].append(lst)
            elif p.skus:
                for sku in p.skus:
                    pos_sku[sku].append(lst)
            else:
                pos_any.append(lst)
        elif p.kind == "checkout":
            checkout.append(lst)
        elif p.kind == "coupon_redeemed":
            for offer in p.offers or (None,):
                coupon[offer].append(lst)
        elif p.kind == "staff_ack":
            for answer in p.ack_actions or (None,):
                ack[answer].append(lst)
    return StoreIndex(
        enter=_freeze(enter),
        leave=_freeze(leave),
        dwell={z: tuple((t, tuple(ls)) for t, ls in sorted(by.items())) for z, by in dwell.items()},
        visit=tuple(visit),
        bell=_freeze(bell),
        pos_category=_freeze(pos_cat),
        pos_sku=_freeze(pos_sku),
        pos_any=tuple(pos_any),
        checkout=tuple(checkout),
        coupon=_freeze(coupon),
        ack=_freeze(ack),
    )


def _freeze(table: Mapping[_K, list[Listener]]) -> dict[_K, Listeners]:
    return {k: tuple(v) for k, v in table.items()}
