"""Debounced presence: enter, stay, switch, leave, flapping, visits."""

from __future__ import annotations

from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.presence import INTERVALS, Change, PresenceSettings, PresenceTracker
from floorwalker.engine.core.testing import StoreScenario
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import STORE

T = 1_000_000.0


def feed(tr: PresenceTracker, seq: list[tuple[float, str, int]], who: str = "s") -> list[Change]:
    out: list[Change] = []
    for ts, zone, rssi in seq:
        out += tr.observe(who, zone, ts, rssi, f"b-{zone}")
    return out


def test_first_sighting_starts_a_visit_but_not_a_zone() -> None:
    tr = PresenceTracker()
    changes = feed(tr, [(T, "A", -70)])
    assert changes == [Change("visit", "s", "A", T)]
    assert tr.zone_of("s") is None


def test_enter_after_three_points_with_dwell_from_first_sighting() -> None:
    tr = PresenceTracker()
    changes = feed(tr, [(T, "A", -70), (T + 1, "A", -70), (T + 2, "A", -70)])
    assert [c.kind for c in changes] == ["visit", "enter"]
    assert changes[-1] == Change("enter", "s", "A", T)
    assert tr.zone_of("s") == "A"


def test_strong_sightings_count_double() -> None:
    tr = PresenceTracker()
    changes = feed(tr, [(T, "A", -55), (T + 1, "A", -55)])
    assert changes[-1].kind == "enter"


def test_sightings_too_far_apart_do_not_add_up() -> None:
    # A device stated to report every second: sightings 5 s apart are not one run.
    tr = PresenceTracker(PresenceSettings(candidate_gap_s=4.0), hints={"s": 1.0})
    feed(tr, [(T, "A", -70), (T + 5, "A", -70), (T + 10, "A", -70)])
    assert tr.zone_of("s") is None


def test_below_noise_floor_places_nobody() -> None:
    tr = PresenceTracker()
    assert feed(tr, [(T + i, "A", -99) for i in range(5)]) == []
    assert tr.zone_of("s") is None


def test_occasional_neighbour_sighting_neither_ends_nor_restarts_dwell() -> None:
    tr = PresenceTracker()
    seq = [(T + i, "A", -65) for i in range(3)]
    # every third report comes from the neighbouring zone for a minute
    seq += [(T + i, "B" if i % 3 == 0 else "A", -70) for i in range(3, 60)]
    changes = feed(tr, seq)
    assert [c.kind for c in changes] == ["visit", "enter"]
    assert tr.zone_of("s") == "A"
    assert tr.dwell_alive("s", "A", T)


def test_flapping_between_two_zones_does_not_fake_a_dwell() -> None:
    tr = PresenceTracker()
    seq = [(T + i, "A" if i % 2 == 0 else "B", -70) for i in range(60)]
    changes = feed(tr, seq)
    enters = [c for c in changes if c.kind == "enter"]
    assert len(enters) <= 1  # at most one zone ever wins; no enter/leave ping-pong


def test_real_move_switches_zone_with_leave_then_enter() -> None:
    tr = PresenceTracker()
    seq = [(T + i, "A", -65) for i in range(5)] + [(T + 5 + i, "B", -65) for i in range(4)]
    changes = feed(tr, seq)
    kinds = [(c.kind, c.zone) for c in changes]
    assert kinds == [("visit", "A"), ("enter", "A"), ("leave", "A"), ("enter", "B")]
    assert changes[-1].at == T + 5  # dwell in B counted from its first sighting


def test_leave_after_gap_is_dated_at_last_sighting() -> None:
    tr = PresenceTracker(PresenceSettings(leave_after_s=10.0))
    feed(tr, [(T + i, "A", -65) for i in range(4)])
    assert tr.leave_due("s") == T + 3 + 10.0
    assert tr.check_leave("s", T + 12) is None
    change = tr.check_leave("s", T + 13)
    assert change == Change("leave", "s", "A", T + 3)
    assert tr.zone_of("s") is None


def test_new_visit_after_thirty_minutes_unseen() -> None:
    tr = PresenceTracker()
    first = feed(tr, [(T, "A", -65)])
    again = feed(tr, [(T + 1799, "A", -65)])
    later = feed(tr, [(T + 1799 + 1800, "A", -65)])
    assert [c.kind for c in first] == ["visit"]
    assert [c.kind for c in again] == []
    assert [c.kind for c in later] == ["visit"]


def test_redelivered_and_stale_sightings_are_ignored() -> None:
    tr = PresenceTracker()
    feed(tr, [(T, "A", -65), (T + 1, "A", -65)])
    assert tr.observe("s", "A", T + 1, -65, "b-A") == ()  # same report twice
    assert tr.observe("s", "A", T + 0.5, -65, "b-A") == ()  # older than one already used
    assert tr.zone_of("s") is None  # neither counted towards entering
    assert tr.observe("s", "A", T + 2, -65, "b-A")[0].kind == "enter"


def test_dwell_confirmation_needs_a_recent_sighting() -> None:
    tr = PresenceTracker(PresenceSettings(dwell_grace_s=4.0))
    feed(tr, [(T + i, "A", -65) for i in range(3)])
    assert tr.dwell_confirmed("s", "A", T, T + 5)
    assert not tr.dwell_confirmed("s", "A", T, T + 10)
    assert not tr.dwell_confirmed("s", "B", T, T + 5)


def test_expire_forgets_subjects_unseen_for_a_visit_gap() -> None:
    tr = PresenceTracker()
    feed(tr, [(T, "A", -65)], who="x")
    feed(tr, [(T + 1000, "A", -65)], who="y")
    gone = tr.expire(T + 1800)
    assert [(who, st.visit_start) for who, st in gone] == [("x", T)]
    assert len(tr) == 1


def test_engine_fast_path_agrees_with_observe() -> None:
    """The engine inlines observe()'s same-zone case; both must leave the same state."""
    store = {
        "store": "s1",
        "timezone": "UTC",
        "zones": {"A": {"adjacent": ["B"]}, "B": {}},
        "beacons": {"b-A": {"zone": "A"}, "b-B": {"zone": "B"}},
        "gateways": ["gw"],
    }
    sc = StoreScenario(RuleSet(()), store)
    seq = [
        (0, "b-A", -70),
        (1, "b-A", -70),
        (2, "b-A", -70),
        (3, "b-A", -99),
        (4, "b-B", -70),
        (5, "b-A", -70),
        (6, "b-A", -70),
        (6, "b-A", -70),
        (20, "b-A", -70),
        (21, "b-A", -60),
    ]
    events = [sc.sighting(T + t, "s", b, r) for t, b, r in seq]
    engine: Engine = sc.engine
    tracker = PresenceTracker()
    for ev in events:
        engine.feed(ev)
        tracker.observe(ev.subject, ev.zone, ev.ts, ev.rssi, ev.beacon)
        fast, slow = engine.stores["s1"].state.presence.states["s"], tracker.states["s"]
        for field in ("zone", "since", "last_seen", "seen", "last_zone", "visit_start"):
            assert getattr(fast, field) == getattr(slow, field), (ev.ts - T, field)
        assert (fast.cand is None) == (slow.cand is None)


# --------------------------------------------------------------------------- cadence


def test_a_device_is_located_at_its_second_report_whatever_its_cadence() -> None:
    tr = PresenceTracker()
    changes = feed(tr, [(T, "A", -70), (T + 1.5, "A", -70), (T + 3, "A", -70)])
    assert changes[-1] == Change("enter", "s", "A", T)  # 1.5 s: three reports, 3 s
    for every in (2.0, 5.0, 10.0):
        tr = PresenceTracker()
        changes = feed(tr, [(T, "A", -70), (T + every, "A", -70)])
        assert changes[-1] == Change("enter", "s", "A", T), every
        assert tr.zone_of("s", T + every) == "A"


def test_a_phone_at_one_report_a_second_still_needs_three() -> None:
    tr = PresenceTracker()
    assert [c.kind for c in feed(tr, [(T, "A", -70), (T + 1, "A", -70)])] == ["visit"]
    assert tr.zone_of("s") is None


def test_a_slow_band_is_not_gone_between_two_reports() -> None:
    tr = PresenceTracker()
    feed(tr, [(T + 10 * k, "A", -70) for k in range(4)])
    assert tr.zone_of("s", T + 30 + 19) == "A"  # one report late: still there
    assert tr.check_leave("s", T + 30 + 19) is None
    assert tr.check_leave("s", T + 30 + 25) == Change("leave", "s", "A", T + 30)


def test_a_slow_band_moves_after_two_reports_of_the_new_zone() -> None:
    tr = PresenceTracker()
    feed(tr, [(T + 10 * k, "A", -70) for k in range(4)])
    one_flip = feed(tr, [(T + 40, "B", -70), (T + 50, "A", -70)])
    assert one_flip == [] and tr.zone_of("s") == "A"  # a single noisy report moves nobody
    moved = feed(tr, [(T + 60, "B", -70), (T + 70, "B", -70)])
    assert [c.kind for c in moved] == ["leave", "enter"] and tr.zone_of("s") == "B"


def test_a_stated_interval_wins_over_what_is_learnt() -> None:
    tr = PresenceTracker(hints={"s": 10.0})
    changes = feed(tr, [(T, "A", -70), (T + 1, "A", -70)])
    assert changes[-1].kind == "enter"  # every report worth two points from the start


def test_learnt_intervals_are_shared_levels() -> None:
    tr = PresenceTracker()
    feed(tr, [(T, "A", -70), (T + 4.9, "A", -70)])
    interval = tr.states["s"].interval
    assert interval == 5.0
    assert any(interval is level for level in INTERVALS)  # the same object: no memory each


def test_staff_bands_use_the_registrys_report_every() -> None:
    registry = dict(STORE)
    registry["staff"] = {**STORE["staff"], "band-07": {"role": "associate", "report_every": "5s"}}
    sc = StoreScenario(RuleSet(()), registry)
    assert sc.engine.stores[STORE["store"]].state.staff.presence.hints == {"band-07": 5.0}


def test_one_stray_sighting_does_not_restart_an_entering_run() -> None:
    tr = PresenceTracker()
    seq = [(T, "A", -70), (T + 1, "A", -70), (T + 2, "B", -70), (T + 3, "A", -70)]
    changes = feed(tr, [*seq, (T + 4, "A", -70)])
    assert changes[-1] == Change("enter", "s", "A", T)  # the dwell counts from the first A
    # The stray sighting costs the resumed run a point: B B after it, and B is entered.
    tr2 = PresenceTracker()
    seq2 = [(T, "B", -70), (T + 1, "A", -70), (T + 2, "B", -70), (T + 3, "B", -70)]
    assert [c.kind for c in feed(tr2, seq2)] == ["visit"]
    assert feed(tr2, [(T + 4, "B", -70)]) == [Change("enter", "s", "B", T)]
