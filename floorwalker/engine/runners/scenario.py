"""``floorwalker rules test RULE --scenario FILE``: a rule tried on a story.

The story (:mod:`floorwalker.engine.runners.story`) becomes the contract's events
as the wire decoder would make them: a shopper "at dairy for 12 s" is a beacon
sighting a second by a beacon of that zone through the store's gateway, "buys
yogurt" a POS line on the shopper's open receipt, "bell at cosmetics" a press of
that zone's bell, "band-05 acks" a band answer to the last alert that band got.
They run through the engine core on a virtual clock
(:class:`~floorwalker.engine.core.testing.StoreScenario`), with the story's
shopper profiles and in-memory guards, so nothing real is sent or spent.

What the engine did comes back in store time, one action a line, in the form an
``expect`` line is written in, followed by a ``#`` comment with the details::

    09:00:10 offer chilled-dwell-bogo to s1  # yogurt-bogo, code 7QXK-...
    09:02:00 alert service-bell to band-05 step 1  # zone cosmetics, priority normal
    # 09:03:10 chilled-dwell-bogo: not sent to s1 (cap)

When the scenario has ``expect``, the two are compared: an expect line written
HH:MM matches any second of that minute, and one without ``step`` any step.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from floorwalker.devices.events import Event
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.actions import Action, Alert, Decision, Offer
from floorwalker.engine.core.testing import StoreScenario
from floorwalker.engine.runners.story import (
    Answer,
    Buy,
    Expected,
    Linger,
    Pay,
    Press,
    Redeem,
    Status,
    Step,
    Story,
    read_story,
)
from floorwalker.errors import RuleProblem, ScenarioError
from floorwalker.rules.loader import load_rule_file, load_rules_for, load_vocabulary
from floorwalker.rules.model import RuleSet

TAIL_S = 86400.0
"""After the story, timers may still fire for this long (as replay's ``--tail``)."""


@dataclass(frozen=True, slots=True)
class Happened:
    """One action, in store time, in the words of an ``expect`` line."""

    at: float
    """Seconds after local midnight of the story's day."""
    kind: str
    rule: str
    target: str
    step: int | None
    line: str
    """``09:00:10 offer chilled-dwell-bogo to s1``"""
    detail: str

    def matches(self, want: Expected) -> bool:
        if (self.kind, self.rule, self.target) != (want.kind, want.rule, want.target):
            return False
        if want.step is not None and self.step != want.step:
            return False
        return int(self.at // want.precision) == int(want.at // want.precision)


@dataclass
class Outcome:
    story: Story
    events: list[Event] = field(default_factory=list)
    """What the story became, in the order it was told."""
    actions: list[Action] = field(default_factory=list)
    happened: list[Happened] = field(default_factory=list)
    suppressed: list[tuple[float, str]] = field(default_factory=list)
    """(when, ``# 09:03:10 chilled-dwell-bogo: offer not sent to s1 (cap)``)"""

    def report(self) -> str:
        """Every action and suppression, in time order."""
        rows: list[tuple[float, int, str]] = []
        for h in self.happened:
            rows.append((h.at, 0, f"{h.line}  # {h.detail}" if h.detail else h.line))
        rows.extend((at, 1, text) for at, text in self.suppressed)
        return "".join(text + "\n" for _, _, text in sorted(rows, key=lambda r: (r[0], r[1])))

    def diff(self) -> str | None:
        """None when the actions are what ``expect`` says (or it says nothing), else a diff.

        Actions at the same moment may come in any order: each expect line is matched
        with an action, and the expect side of the diff follows the actions' order.
        """
        expect = self.story.expect
        if expect is None:
            return None
        free = list(range(len(self.happened)))
        rows: list[tuple[float, int, str]] = []
        for want in expect:
            match = next((i for i in free if self.happened[i].matches(want)), None)
            if match is None:
                rows.append((want.at, len(self.happened), _expected_line(want, self.story)))
            else:
                free.remove(match)
                rows.append((self.happened[match].at, match, self.happened[match].line))
        wanted = [text for _, _, text in sorted(rows)]
        got = [h.line for h in self.happened]
        if wanted == got:
            return None
        lines = difflib.unified_diff(wanted, got, "expect", "got", lineterm="", n=len(got) + 1)
        return "\n".join(lines) + "\n"


def _expected_line(want: Expected, story: Story) -> str:
    day, rest = divmod(int(want.at), 86400)
    hh, rest = divmod(rest, 3600)
    mm, ss = divmod(rest, 60)
    clock = f"{hh:02d}:{mm:02d}" + (f":{ss:02d}" if want.precision == 1 else "")
    if day:
        clock = f"{story.date.fromordinal(story.date.toordinal() + day).isoformat()} {clock}"
    line = f"{clock} {want.kind} {want.rule} to {want.target}"
    return line + (f" step {want.step}" if want.step is not None else "")


# --------------------------------------------------------------------------- running


def load_for_test(rule: Path, registry: Registry) -> RuleSet:
    """A rule file (with the default policy) or a whole rules directory (with its own)."""
    if rule.is_dir():
        return load_rules_for(rule, {registry.store: registry})
    roles = {m.role for m in registry.staff.values()}
    vocabulary = load_vocabulary(rule.parent, extra_tags=registry.tags, extra_roles=roles)
    return RuleSet((load_rule_file(rule, vocabulary),))


def run_scenario(rule: Path, scenario: Path, registries: Mapping[str, Registry]) -> Outcome:
    """Read the scenario, load the rules for its store, run the story; raise on a bad one."""
    # The story names the store, whose words the rules may use; the expect lines name
    # the rules. So: the story, then the rules for its store, then the expect lines.
    story = read_story(scenario, registries, rules=None)  # every word but the rule ids
    rules = load_for_test(rule, story.registry)
    story = read_story(scenario, registries, rules=[r.id for r in rules.rules])
    return play(story, rules)


def play(story: Story, rules: RuleSet) -> Outcome:
    sc = StoreScenario(rules, story.registry, profiles=story.profiles)
    driver = _Driver(story, sc)
    for step in story.steps:
        driver.take(step)
    sc.run_until(driver.last)
    if story.until is not None:
        sc.run_until(story.epoch(story.until))
    else:
        sc.engine.flush(TAIL_S)
        sc.actions.extend(sc.engine.drain())
    outcome = Outcome(story, events=driver.events, actions=list(sc.actions))
    outcome.happened = [_happened(a, story) for a in sc.actions]
    outcome.suppressed = [_suppressed(d, story) for d in sc.decisions if not d.sent]
    return outcome


class _Driver:
    """Turns story steps into events on the scenario's virtual clock."""

    def __init__(self, story: Story, sc: StoreScenario) -> None:
        self.story = story
        self.sc = sc
        self.registry = story.registry
        self.receipts: dict[str, int] = {}
        self.open_total: dict[str, float] = {}
        self.last = float("-inf")
        """The time of the last event queued."""
        self.events: list[Event] = []

    def take(self, step: Step) -> None:
        ts = self.story.epoch(step.at)
        self.last = max(self.last, ts + (step.seconds if isinstance(step, Linger) else 0.0))
        if isinstance(step, Linger):
            beacon = min(b for b, z in self.registry.beacons.items() if z == step.zone)
            made = self.sc.linger(
                step.subject, beacon, start=ts, seconds=step.seconds, staff=step.staff
            )
            self.events.extend(made)
        elif isinstance(step, Buy):
            self.open_total[step.shopper] = self.open_total.get(step.shopper, 0.0) + step.price
            receipt = self._receipt(step.shopper)
            item = self.sc.pos_item(
                ts,
                category=step.category,
                sku=step.sku,
                shopper=step.shopper,
                receipt=receipt,
                price=step.price,
            )
            self.events.append(item)
        elif isinstance(step, Pay):
            total = step.total if step.total is not None else self.open_total.get(step.shopper, 0.0)
            receipt = self._receipt(step.shopper)
            self.events.append(
                self.sc.checkout(ts, total=total, shopper=step.shopper, receipt=receipt)
            )
            self.receipts[step.shopper] = self.receipts.get(step.shopper, 0) + 1
            self.open_total.pop(step.shopper, None)
        elif isinstance(step, Redeem):
            self._redeem(ts, step)
        elif isinstance(step, Press):
            self.events.append(
                self.sc.bell(ts, step.bell, reason=step.reason, shopper=step.shopper)
            )
        elif isinstance(step, Answer):
            self._answer(ts, step)
        elif isinstance(step, Status):
            self.events.append(self.sc.status(ts, step.device, online=step.online))

    def _receipt(self, shopper: str) -> str:
        return f"r-{shopper}-{self.receipts.get(shopper, 0) + 1}"

    def _redeem(self, ts: float, step: Redeem) -> None:
        self.sc.run_until(ts)
        offers = [
            a
            for a in self.sc.offers()
            if a.shopper == step.shopper and step.offer in (a.offer, a.rule) and a.ts <= ts
        ]
        if not offers:
            self._refuse(
                step,
                f"{step.shopper} redeems `{step.offer}`, but no coupon of that offer"
                f" reached {step.shopper} by {self.story.local(ts)}",
            )
        receipt = self._receipt(step.shopper)
        self.events.append(
            self.sc.redeem(ts, offers[-1].code, shopper=step.shopper, receipt=receipt)
        )

    def _answer(self, ts: float, step: Answer) -> None:
        self.sc.run_until(ts)
        alerts = [a for a in self.sc.alerts() if a.band == step.band and a.ts <= ts]
        if not alerts:
            self._refuse(
                step,
                f"{step.band} answers, but no alert reached {step.band} by {self.story.local(ts)}",
            )
        self.events.append(self.sc.ack(ts, step.band, alerts[-1].id, step.action))

    def _refuse(self, step: Step, message: str) -> NoReturn:
        where = step.where
        raise ScenarioError([RuleProblem(self.story.file, where.line, where.col, message)])


def _happened(action: Action, story: Story) -> Happened:
    at = story.seconds_of_day(action.ts)
    clock = story.local(action.ts)
    if isinstance(action, Offer):
        line = f"{clock} offer {action.rule} to {action.shopper}"
        detail = f"{action.offer}, code {action.code}: {action.message}"
        return Happened(at, "offer", action.rule, action.shopper, None, line, detail)
    assert isinstance(action, Alert)
    line = f"{clock} alert {action.rule} to {action.band} step {action.step}"
    detail = f"zone {action.zone or '-'}, priority {action.priority}: {action.message}"
    return Happened(at, "alert", action.rule, action.band, action.step, line, detail)


def _suppressed(decision: Decision, story: Story) -> tuple[float, str]:
    text = (
        f"# {story.local(decision.ts)} {decision.rule}: {decision.kind} not sent"
        f" to {decision.subject} ({decision.reason})"
    )
    return story.seconds_of_day(decision.ts), text
