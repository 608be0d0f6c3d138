"""When a stay began, and when a dwell is due: the rules behind dwell fire time (#8, item 6)."""

from __future__ import annotations

from floorwalker.engine.core.movement import DWELL_POLL_S
from floorwalker.engine.core.presence import Change, PresenceTracker
from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import PROFILES, STORE
from tests.engine.core.test_presence import T, feed


def in_a(until: int = 4) -> list[tuple[float, str, int]]:
    """Placed in A from T (three sightings), then seen there each second up to T + until."""
    return [(T + i, "A", -65) for i in range(until + 1)]


def enter_of(changes: list[Change], zone: str) -> Change:
    return next(c for c in changes if c.kind == "enter" and c.zone == zone)


def test_a_stray_sighting_at_the_move_dates_the_stay_from_the_stray() -> None:
    # The first report from B was heard from C: the move began there, not at B's first.
    changes = feed(
        PresenceTracker(), [*in_a(), (T + 5, "C", -80)] + [(T + t, "B", -65) for t in (6, 7, 8)]
    )
    assert enter_of(changes, "B") == Change("enter", "s", "B", T + 5)
    assert Change("leave", "s", "A", T + 4) in changes


def test_a_sighting_of_the_old_zone_after_the_stray_keeps_the_new_zones_first() -> None:
    seq = [*in_a(), (T + 5, "C", -80), (T + 6, "A", -65)] + [(T + t, "B", -65) for t in (7, 8, 9)]
    assert enter_of(feed(PresenceTracker(), seq), "B").at == T + 7


def test_one_stray_of_the_old_zone_does_not_restart_an_entering_run() -> None:
    seq = [*in_a(), (T + 5, "B", -70), (T + 6, "A", -70)] + [(T + t, "B", -70) for t in (7, 8, 9)]
    changes = feed(PresenceTracker(), seq)
    assert enter_of(changes, "B").at == T + 5  # the dwell in B counts from its first sighting


def test_two_sightings_of_the_old_zone_in_a_row_end_an_entering_run() -> None:
    seq = [*in_a(), (T + 5, "B", -70), (T + 6, "A", -70), (T + 7, "A", -70)]
    seq += [(T + t, "B", -70) for t in (8, 9, 10)]
    assert enter_of(feed(PresenceTracker(), seq), "B").at == T + 8


def test_a_lone_old_zone_sighting_still_cannot_fake_a_move() -> None:
    # B A B A ...: the run for B survives each A but never gathers enter_score points.
    seq = [*in_a(), *[(T + 5 + i, "B" if i % 2 == 0 else "A", -70) for i in range(20)]]
    changes = feed(PresenceTracker(), seq)
    assert [c.kind for c in changes] == ["visit", "enter"]


def test_a_lost_report_dates_the_new_zones_run_one_report_earlier() -> None:
    # One report a second; none at T + 5 and T + 6: the first from B may be the lost one.
    changes = feed(PresenceTracker(), [*in_a()] + [(T + t, "B", -65) for t in (7, 8, 9)])
    assert enter_of(changes, "B").at == T + 6
    assert Change("leave", "s", "A", T + 4) in changes


def test_an_ordinary_gap_does_not_move_the_start() -> None:
    changes = feed(PresenceTracker(), [*in_a()] + [(T + t, "B", -65) for t in (5.8, 6.8, 7.8)])
    assert enter_of(changes, "B").at == T + 5.8


def test_no_dwell_while_halfway_to_another_zone() -> None:
    # One weak sighting of B is no reason to doubt the dwell in A; a strong one is.
    weak = PresenceTracker()
    feed(weak, [*in_a(), (T + 5, "B", -70)])
    assert weak.dwell_confirmed("s", "A", T, T + 5.1)
    strong = PresenceTracker()
    feed(strong, [*in_a(), (T + 5, "B", -55)])
    assert not strong.dwell_confirmed("s", "A", T, T + 5.1)
    # ... until A is seen again.
    feed(strong, [(T + 6, "A", -65)])
    assert strong.dwell_confirmed("s", "A", T, T + 6.1)


def test_a_dwell_due_while_unseen_fires_at_the_next_re_check_after_a_sighting(
    catalog: RuleSet,
) -> None:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    sc.linger("app-loyal", "b-dairy", start=T0, seconds=8)  # the report at T0 + 9 is lost
    sc.send(sc.sighting(T0 + 10.1, "app-loyal", "b-dairy"))
    sc.run_until(T0 + 10.1)
    assert sc.offers() == []  # due at T0 + 10, but unseen for 2 s then
    sc.run_until(T0 + 12)
    assert [(o.rule, o.ts) for o in sc.offers()] == [("chilled-dwell-bogo", T0 + 10 + DWELL_POLL_S)]
    assert DWELL_POLL_S <= 0.25  # not a whole report interval late
