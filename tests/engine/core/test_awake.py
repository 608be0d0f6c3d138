"""Rules asleep (campaign, weekday, daypart) are counted in bulk exactly as firing them would.

Without a decision listener the triggers skip firing rules whose leading time
conditions fail now and count their refusals in bulk; with one, every rule
fires as before. Both must give the same actions and the same counts, also
when the traffic crosses midnight and daypart edges.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from floorwalker.devices.events import Event
from floorwalker.engine.core.actions import Action, Decision
from floorwalker.engine.core.engine import Engine
from floorwalker.rules.loader import load_rules
from floorwalker.rules.model import RuleSet
from floorwalker.simulators.bench import core as bc
from floorwalker.simulators.rulegen import synthetic_rules, write_rules_dir

CATALOG = Path(__file__).parents[3] / "floorwalker" / "rules" / "catalog"


# Dayparts with edges inside the shifted traffic, leading (so they put the rule to sleep).
EDGE_RULE = """\
id: edge-{name}
when:
  enter: {{zone_tag: entrance}}
if:
  daypart: {{from: "{part[0]}", to: "{part[1]}"}}
  first_visit: false
offer:
  id: edge-{name}
  message: Welcome.
  expires: 1h
"""


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> tuple[bc._Chain, list[Event], RuleSet]:
    cfg = bc.BenchSettings(events=30_000, stores=3, arrival_minutes=6.0)
    chain = bc._Chain(cfg)
    _traffic, events, _ = bc._workload(cfg, chain)
    rules_dir = tmp_path_factory.mktemp("realistic")
    write_rules_dir(rules_dir, synthetic_rules(400, "realistic", 11), catalog=CATALOG)
    for name, part in (("early", ("07:00", "07:02")), ("late", ("07:01", "23:59"))):
        (rules_dir / f"edge-{name}.yaml").write_text(EDGE_RULE.format(name=name, part=part))
    return chain, events, load_rules(rules_dir)


def shifted(events: list[Event], chain: bc._Chain, local_hh_mm: tuple[int, int]) -> list[Event]:
    """The same traffic, moved so that it starts at this store-local time on its day."""
    tz = next(iter(chain.registries.values())).tzinfo
    first = datetime.fromtimestamp(events[0].ts, tz)
    target = first.replace(hour=local_hh_mm[0], minute=local_hh_mm[1], second=0)
    if target < first:
        target += timedelta(days=1)
    offset = target.timestamp() - events[0].ts
    return [e._replace(ts=e.ts + offset) for e in events]


def run(
    rules: RuleSet, chain: bc._Chain, events: list[Event], *, listen: bool
) -> tuple[list[Action], dict[str, int], dict[tuple[str, str], int]]:
    decisions: list[Decision] = []
    engine = Engine(
        rules,
        chain.registries,
        profiles=chain.book,
        on_decision=decisions.append if listen else None,
    )
    actions: list[Action] = []
    for ev in events:
        engine.advance_to(ev.ts)
        engine.ingest(ev)
        actions += engine.drain()
    engine.flush(600.0)
    actions += engine.drain()
    stats = engine.stats
    return actions, dict(stats.triggered), dict(stats.suppressed)


@pytest.mark.parametrize("start", [None, (23, 57), (9, 58), (6, 59)])
def test_bulk_counts_equal_firing_every_rule(
    workload: tuple[bc._Chain, list[Event], RuleSet], start: tuple[int, int] | None
) -> None:
    chain, events, rules = workload
    if start is not None:
        events = shifted(events, chain, start)
    fast = run(rules, chain, events, listen=False)
    slow = run(rules, chain, events, listen=True)
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    assert fast[2] == slow[2]
    asleep = sum(n for (_rule, why), n in fast[2].items() if why.startswith("condition:campaign"))
    assert asleep > 0  # the traffic does meet sleeping rules
    if start == (6, 59):  # both edge rules sleep, wake and (early) sleep again
        for rule in ("edge-early", "edge-late"):
            assert (
                fast[2].get((rule, "condition:daypart"), 0) > 0
                and fast[1][rule] > fast[2][(rule, "condition:daypart")]
            )
