"""Found by ``bench accuracy``: a 1 Hz phone's learnt interval stuck at 1.5 s after one
lost report (the moving average moved less than a level, and rounding put it back), so
each sighting weighed 1.5 and one strong sighting of a neighbour zone (2 x 1.5 = 3 =
``enter_score``) moved the shopper out of the zone they were in.
"""

from __future__ import annotations

from floorwalker.engine.core.presence import PresenceTracker


def _phone_with_one_lost_report() -> tuple[PresenceTracker, float]:
    """In zone a at exactly 1 Hz for 40 s, one report (t=10) lost."""
    p = PresenceTracker()
    t = 0.0
    for k in range(40):
        t = float(k)
        if k != 10:
            p.observe("s", "a", t, -58, "b-a")
    return p, t


def test_learnt_interval_comes_back_to_one_second() -> None:
    p, _ = _phone_with_one_lost_report()
    assert p.states["s"].interval == 1.0  # was 1.5: 0.6 * 1.5 + 0.4 * 1.0 = 1.3 -> 1.5 again


def test_one_strong_neighbour_sighting_does_not_move_a_1hz_phone() -> None:
    p, t = _phone_with_one_lost_report()
    p.observe("s", "b", t + 1.0, -50, "b-b")  # the next report hears the adjacent zone
    assert p.zone_of("s") == "a"  # was "b": 2 points x weight 1.5 = enter_score


def test_without_the_lost_report_it_holds() -> None:
    p = PresenceTracker()
    for k in range(40):
        p.observe("s", "a", float(k), -58, "b-a")
    assert p.states["s"].interval == 1.0
    p.observe("s", "b", 40.0, -50, "b-b")
    assert p.zone_of("s") == "a"
