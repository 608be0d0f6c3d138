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
from functools import cached_property
from typing import NamedTuple, TypeVar

from floorwalker.devices.registry import Registry
from floorwalker.engine.core.conditions import Gate, gate_of
from floorwalker.rules.model import (
    Absence,
    Bought,
    Count,
    Pattern,
    Rule,
    RuleSet,
    Sequence,
    Single,
    canonical,
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


EXTRA_KINDS = frozenset({"bell", "pos_item", "checkout"})
"""Pattern kinds with constraints beyond their index key (checked when found)"""


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
    gates: Mapping[str, Gate]
    """rule id -> its compiled conditions"""

    @property
    def fingerprint(self) -> str:
        """Stable across processes: tells a snapshot whether it was taken under these rules."""
        return self.ruleset.fingerprint

    @cached_property
    def bought_keys(self) -> dict[int, str]:
        """History slot -> a stable name of its condition (slots are numbered per compile)."""
        return {slot: repr(canonical(cond)) for cond, slot in self.bought_slots.items()}


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
    gates = {r.id: gate_of(r) for r in rules}
    return CompiledRules(ruleset, stores, {r.id: r for r in rules}, slots, gates)


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


class _StoreIndexBuilder:
    """Files each listener under the key its pattern can be looked up by."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.enter: dict[str, list[Listener]] = defaultdict(list)
        self.leave: dict[str, list[Listener]] = defaultdict(list)
        self.dwell: dict[str, dict[float, list[Listener]]] = defaultdict(lambda: defaultdict(list))
        self.visit: list[Listener] = []
        self.bell: dict[str | None, list[Listener]] = defaultdict(list)
        self.pos_cat: dict[str, list[Listener]] = defaultdict(list)
        self.pos_sku: dict[str, list[Listener]] = defaultdict(list)
        self.pos_any: list[Listener] = []
        self.checkout: list[Listener] = []
        self.coupon: dict[str | None, list[Listener]] = defaultdict(list)
        self.ack: dict[str | None, list[Listener]] = defaultdict(list)

    def add(self, lst: Listener) -> None:
        p = lst.pattern
        if p.kind in ("enter", "leave", "dwell"):
            self._add_zone(lst)
        elif p.kind == "visit_start":
            self.visit.append(lst)
        elif p.kind == "bell":
            _file(self.bell, p.reasons, lst)
        elif p.kind == "pos_item":
            self._add_pos(lst)
        elif p.kind == "checkout":
            self.checkout.append(lst)
        elif p.kind == "coupon_redeemed":
            _file(self.coupon, p.offers, lst)
        elif p.kind == "staff_ack":
            _file(self.ack, p.ack_actions, lst)

    def _add_zone(self, lst: Listener) -> None:
        p = lst.pattern
        for zone in _zones_for(p, self.registry):
            if p.kind == "enter":
                self.enter[zone].append(lst)
            elif p.kind == "leave":
                self.leave[zone].append(lst)
            else:
                self.dwell[zone][p.dwell_s].append(lst)

    def _add_pos(self, lst: Listener) -> None:
        p = lst.pattern
        # A pattern with both categories and skus is filed by category; the sku is
        # checked when it matches (see core._extra_match).
        if p.categories:
            for cat in p.categories:
                self.pos_cat[cat].append(lst)
        elif p.skus:
            for sku in p.skus:
                self.pos_sku[sku].append(lst)
        else:
            self.pos_any.append(lst)

    def build(self) -> StoreIndex:
        return StoreIndex(
            enter=_freeze(self.enter),
            leave=_freeze(self.leave),
            dwell={
                zone: tuple((t, tuple(ls)) for t, ls in sorted(by.items()))
                for zone, by in self.dwell.items()
            },
            visit=tuple(self.visit),
            bell=_freeze(self.bell),
            pos_category=_freeze(self.pos_cat),
            pos_sku=_freeze(self.pos_sku),
            pos_any=tuple(self.pos_any),
            checkout=tuple(self.checkout),
            coupon=_freeze(self.coupon),
            ack=_freeze(self.ack),
        )


def _store_index(registry: Registry, listeners: list[Listener]) -> StoreIndex:
    builder = _StoreIndexBuilder(registry)
    for lst in listeners:
        builder.add(lst)
    return builder.build()


def _file(table: dict[str | None, list[Listener]], keys: frozenset[str], lst: Listener) -> None:
    """File under each key, or under None ("any") when the pattern names none."""
    filed: list[str | None] = [*sorted(keys)] or [None]
    for key in filed:
        table[key].append(lst)


def _freeze(table: Mapping[_K, list[Listener]]) -> dict[_K, Listeners]:
    return {k: tuple(v) for k, v in table.items()}
