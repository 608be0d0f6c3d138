"""Staff routing order: in zone, adjacent, section, elsewhere, unknown; never offline.

Band ids are chosen so that id order is the *reverse* of the expected routing
order: a router that fell back on ids would fail these tests.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from floorwalker.devices.registry import Registry
from floorwalker.engine.core.presence import PresenceSettings
from floorwalker.engine.core.staff import Floor, StaffRoster
from floorwalker.rules.model import Advisor, ByRole, Nearest, NextNearest

T = 1_700_000_000.0

LAYOUT: dict[str, Any] = {
    "store": "s-route",
    "timezone": "Europe/Berlin",
    "zones": {
        # Z - A - B - E is a corridor; F is an island with no neighbours.
        "Z": {"tags": ["t"], "section": "S", "adjacent": ["A"]},
        "A": {"tags": ["t"], "section": "T", "adjacent": ["B"]},
        "B": {"tags": ["t"], "section": "S", "adjacent": ["E"]},
        "E": {"tags": ["t"], "section": "U"},
        "F": {"tags": ["t"], "section": "U"},
    },
    "beacons": {f"b-{z}": {"zone": z} for z in "ZABEF"},
    "bells": {},
    "gateways": ["gw"],
    "terminals": [],
    "staff": {
        "band-9-in": {"role": "associate"},
        "band-8-adjacent": {"role": "associate"},
        "band-7-section": {"role": "associate"},
        "band-6-assigned": {"role": "associate", "sections": ["S"]},
        "band-5-far": {"role": "associate"},
        "band-4-island": {"role": "manager"},
        "band-3-unknown": {"role": "manager"},
    },
}
PLACES = {
    "band-9-in": "Z",
    "band-8-adjacent": "A",
    "band-7-section": "B",  # same section as Z, two hops
    "band-6-assigned": "F",  # assigned to Z's section, standing on the island
    "band-5-far": "E",  # other section, three hops
    "band-4-island": "F",  # other section, unreachable
}
EXPECTED = [
    "band-9-in",
    "band-8-adjacent",
    "band-7-section",
    "band-6-assigned",
    "band-5-far",
    "band-4-island",
    "band-3-unknown",
]


def roster(places: dict[str, str] | None = None) -> StaffRoster:
    reg = Registry.from_mapping(LAYOUT)
    r = StaffRoster(reg, PresenceSettings(visit_gap_s=12 * 3600.0))
    for band, zone in (PLACES if places is None else places).items():
        for i in range(2):  # two strong sightings: 4 points, enough to enter
            r.presence.observe(band, zone, T + i, -50, f"b-{zone}")
    return r


def test_ranked_in_zone_adjacent_section_elsewhere_unknown() -> None:
    r = roster()
    assert r.ranked("Z") == EXPECTED


def test_nearest_picks_the_band_in_the_zone() -> None:
    assert roster().route((Nearest(),), "Z", None) == "band-9-in"


def test_offline_bands_are_never_chosen() -> None:
    r = roster()
    r.set_online("band-9-in", False)
    assert "band-9-in" not in r.ranked("Z")
    assert r.route((Nearest(),), "Z", None) == "band-8-adjacent"
    for band in EXPECTED:
        r.set_online(band, False)
    assert r.ranked("Z") == []
    assert r.route((Nearest(),), "Z", None) is None
    assert r.route((ByRole("manager"),), "Z", None) is None
    r.set_online("band-9-in", True)
    assert r.route((Nearest(),), "Z", None) == "band-9-in"


def test_offline_band_in_zone_does_not_count_as_staff_there() -> None:
    r = roster()
    assert r.anyone_in("Z")
    r.set_online("band-9-in", False)
    assert not r.anyone_in("Z")
    assert not r.anyone_in(None)


def test_free_beats_busy_among_equals() -> None:
    r = roster({"band-9-in": "Z", "band-8-adjacent": "Z"})
    assert r.ranked("Z")[:2] == ["band-8-adjacent", "band-9-in"]  # equals: by id
    busy = Floor(busy=frozenset({"band-8-adjacent"}))
    assert r.ranked("Z", floor=busy)[:2] == ["band-9-in", "band-8-adjacent"]
    assert r.route((Nearest(),), "Z", None, floor=busy) == "band-9-in"
    assert r.route((Nearest(),), "Z", None) == "band-8-adjacent"


def test_fewer_open_pages_win_among_equals() -> None:
    r = roster({"band-9-in": "Z", "band-8-adjacent": "Z"})
    loaded = Floor(load={"band-8-adjacent": 2, "band-9-in": 1})
    assert r.route((Nearest(),), "Z", None, floor=loaded) == "band-9-in"
    both = Floor(busy=frozenset({"band-9-in"}), load={"band-8-adjacent": 2})
    assert r.route((Nearest(),), "Z", None, floor=both) == "band-8-adjacent"  # busy weighs more


def test_a_capped_band_is_passed_over() -> None:
    r = roster({"band-9-in": "Z", "band-8-adjacent": "Z"})
    capped = Floor(capped=frozenset({"band-8-adjacent"}))
    assert r.route((Nearest(),), "Z", None, floor=capped) == "band-9-in"


def test_busy_band_in_zone_still_beats_free_band_further_away() -> None:
    r = roster()
    busy = Floor(busy=frozenset({"band-9-in"}))
    assert r.ranked("Z", floor=busy)[:2] == ["band-9-in", "band-8-adjacent"]


def test_unknown_zone_ranks_everyone_by_busy_then_id() -> None:
    r = roster()
    ranked = r.ranked(None, floor=Floor(busy=frozenset({"band-3-unknown"})))
    assert ranked[-1] == "band-3-unknown"
    assert ranked[:-1] == sorted(ranked[:-1])


def test_nearest_not_anywhere_stays_within_the_section() -> None:
    r = roster({"band-5-far": "E", "band-4-island": "F"})
    assert r.route((Nearest(anywhere=False),), "Z", None) is None
    assert r.route((Nearest(anywhere=True),), "Z", None) == "band-5-far"
    r2 = roster({"band-7-section": "B", "band-5-far": "E"})
    assert r2.route((Nearest(anywhere=False),), "Z", None) == "band-7-section"


def test_by_role_nearest_first() -> None:
    r = roster()
    assert r.route((ByRole("manager"),), "Z", None) == "band-4-island"
    assert r.route((ByRole("cashier"),), "Z", None) is None


def test_targets_are_tried_in_order() -> None:
    r = roster()
    targets = (ByRole("cashier"), ByRole("manager"), Nearest())
    assert r.route(targets, "Z", None) == "band-4-island"


def test_next_nearest_skips_bands_already_paged() -> None:
    r = roster()
    paged = frozenset({"band-9-in"})
    assert r.route((NextNearest(),), "Z", None, paged) == "band-8-adjacent"
    paged = frozenset(EXPECTED[:-1])
    assert r.route((NextNearest(),), "Z", None, paged) == "band-3-unknown"
    assert r.route((NextNearest(),), "Z", None, frozenset(EXPECTED)) is None


def test_role_target_may_page_a_band_again_but_never_one_that_declined() -> None:
    r = roster()
    paged = frozenset({"band-4-island"})
    assert r.route((ByRole("manager"),), "Z", None, paged) == "band-4-island"
    declined = frozenset({"band-4-island"})
    assert r.route((ByRole("manager"),), "Z", None, paged, declined) == "band-3-unknown"


@pytest.mark.parametrize(
    ("advisor", "offline", "expected"),
    [
        ("band-5-far", False, "band-5-far"),  # however far away
        ("band-5-far", True, None),
        ("band-unknown", False, None),  # not a band of this store
        (None, False, None),
    ],
)
def test_advisor_target(advisor: str | None, offline: bool, expected: str | None) -> None:
    r = roster()
    if offline and advisor:
        r.set_online(advisor, False)
    assert r.route((Advisor(),), "Z", advisor) == expected


def test_band_that_left_has_no_location() -> None:
    r = roster()
    assert r.zone_of("band-9-in") == "Z"
    r.presence.check_leave("band-9-in", T + 60)
    assert r.zone_of("band-9-in") is None
    assert r.ranked("Z")[0] == "band-8-adjacent"
    assert r.ranked("Z")[-2:] == ["band-3-unknown", "band-9-in"]


def test_a_new_registry_reroutes_by_its_own_map_and_cadences() -> None:
    r = roster()
    assert r.ranked("Z") == EXPECTED  # the tiers of the first map, kept by the roster
    moved = copy.deepcopy(LAYOUT)
    moved["zones"]["F"]["adjacent"] = ["Z"]  # the island gets a door into Z
    moved["staff"]["band-5-far"]["report_every"] = "10s"
    r.registry = Registry.from_mapping(moved)
    # Both bands on the island are now one hop away, as near as band-8: by id among them.
    assert r.ranked("Z")[1:4] == ["band-4-island", "band-6-assigned", "band-8-adjacent"]
    assert r.presence.hints == {"band-5-far": 10.0}
