"""A core bug found by ``bench accuracy`` (staffbench): a 1 Hz phone's learnt interval sticks
at 1.5 s after one lost report, so each sighting weighs 1.5 and one strong sighting of a
neighbour zone (2 x 1.5 = 3 = ``enter_score``) moves the shopper out of the zone they are in.

Strict xfail: these tests document the bug for the core's owner and start failing (so they
can be un-marked) once it is fixed.
"""

from __future__ import annotations

import pytest

from floorwalker.engine.core.presence import PresenceTracker

BUG = "learnt interval sticks at 1.5 s after one lost report (EWMA + quantize), weight 1.5"


def _phone_with_one_lost_report() -> tuple[PresenceTracker, float]:
    """In zone a at exactly 1 Hz for 40 s, one report (t=10) lost."""
    p = PresenceTracker()
    t = 0.0
    for k in range(40):
        t = float(k)
        if k != 10:
            p.observe("s", "a", t, -58, "b-a")
    return p, t


@pytest.mark.xfail(strict=True, reason=BUG)
def test_learnt_interval_comes_back_to_one_second() -> None:
    p, _ = _phone_with_one_lost_report()
    assert p.states["s"].interval == 1.0  # is 1.5: 0.6 * 1.5 + 0.4 * 1.0 = 1.3 -> 1.5 again


@pytest.mark.xfail(strict=True, reason=BUG)
def test_one_strong_neighbour_sighting_does_not_move_a_1hz_phone() -> None:
    p, t = _phone_with_one_lost_report()
    p.observe("s", "b", t + 1.0, -50, "b-b")  # the next report hears the adjacent zone
    assert p.zone_of("s") == "a"  # is "b": 2 points x weight 1.5 = enter_score


def test_without_the_lost_report_it_holds() -> None:
    p = PresenceTracker()
    for k in range(40):
        p.observe("s", "a", float(k), -58, "b-a")
    assert p.states["s"].interval == 1.0
    p.observe("s", "b", 40.0, -50, "b-b")
    assert p.zone_of("s") == "a"
