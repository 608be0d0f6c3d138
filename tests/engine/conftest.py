"""A small store that has a zone for every tag the catalog uses, and its shoppers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from floorwalker.engine.core.profiles import Profile
from floorwalker.engine.core.testing import T0, StoreScenario
from floorwalker.rules.loader import load_rules
from floorwalker.rules.model import RuleSet

CATALOG = Path(__file__).resolve().parents[2] / "floorwalker" / "rules" / "catalog"
DAY = 86400.0

STORE: dict[str, Any] = {
    "store": "s001",
    "timezone": "Asia/Shanghai",
    "zones": {
        "entrance": {"tags": ["entrance"], "section": "front", "adjacent": ["dairy-chilled"]},
        "dairy-chilled": {
            "tags": ["chilled", "dairy"],
            "section": "grocery",
            "adjacent": ["entrance", "coffee-bar", "baby"],
        },
        "coffee-bar": {"tags": ["coffee-bar"], "section": "grocery", "adjacent": ["cosmetics"]},
        "baby": {"tags": ["baby"], "section": "grocery"},
        "cosmetics": {
            "tags": ["cosmetics-testers"],
            "section": "beauty",
            "adjacent": ["appliances"],
        },
        "appliances": {"tags": ["high-consideration"], "section": "home"},
        "backroom": {"tags": [], "section": "office"},
    },
    "beacons": {
        "b-door": {"zone": "entrance"},
        "b-dairy": {"zone": "dairy-chilled"},
        "b-coffee": {"zone": "coffee-bar"},
        "b-baby": {"zone": "baby"},
        "b-cosm": {"zone": "cosmetics"},
        "b-appl": {"zone": "appliances"},
        "b-back": {"zone": "backroom"},
    },
    "bells": {"bell-dairy": {"zone": "dairy-chilled"}, "bell-appl": {"zone": "appliances"}},
    "gateways": ["gw-1", "gw-2"],
    "terminals": ["pos-1"],
    "staff": {
        "band-07": {"name": "Li Na", "role": "associate", "sections": ["grocery"]},
        "band-08": {"name": "Zhao Min", "role": "associate", "sections": ["beauty", "home"]},
        "band-01": {"name": "Wang Wei", "role": "manager"},
    },
}

PROFILES = [
    Profile(
        "app-loyal",
        tier="gold",
        segment="loyal",
        marketing=True,
        first_visit=T0 - 400 * DAY,
        last_visit=T0 - 3 * DAY,
        lifetime_value=1200.0,
    ),
    Profile(
        "app-nocons",
        tier="member",
        segment="regular",
        marketing=False,
        first_visit=T0 - 100 * DAY,
        last_visit=T0 - DAY,
    ),
    Profile(
        "app-vip",
        tier="vip",
        segment="loyal",
        marketing=True,
        first_visit=T0 - 900 * DAY,
        last_visit=T0 - 10 * DAY,
        lifetime_value=30000.0,
        advisor="band-08",
    ),
    Profile(
        "app-dormant",
        tier="gold",
        segment="dormant",
        marketing=True,
        first_visit=T0 - 1000 * DAY,
        last_visit=T0 - 200 * DAY,
        lifetime_value=8000.0,
        advisor="band-07",
    ),
    Profile(
        "app-bday",
        tier="silver",
        segment="growing",
        marketing=True,
        birthday=(11, 25),
        first_visit=T0 - 300 * DAY,
        last_visit=T0 - 20 * DAY,
    ),
]


@pytest.fixture(scope="session")
def catalog() -> RuleSet:
    return load_rules(CATALOG)


@pytest.fixture
def store(catalog: RuleSet) -> StoreScenario:
    return StoreScenario(catalog, STORE, profiles=PROFILES)


# --------------------------------------------------------------------------- helpers

#: A policy that switches off every cross-rule guard, so one guard can be tested alone.
PERMISSIVE_POLICY = "offers_per_shopper: []\nfatigue: off\nquiet_hours: []\n"


def write_rules(directory: Path, rules: dict[str, str], policy: str | None = None) -> RuleSet:
    """Write rule files (name -> YAML text) and an optional policy.yaml, then load them."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rules.items():
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    if policy is not None:
        (directory / "policy.yaml").write_text(policy, encoding="utf-8")
    return load_rules(directory)


def place_staff(
    sc: StoreScenario, where: dict[str, str], *, start: float, seconds: float = 300.0
) -> None:
    """Locate staff bands: band -> beacon, reporting about once a second like phones."""
    for band, beacon in where.items():
        sc.linger(band, beacon, start=start, seconds=seconds, staff=True)
