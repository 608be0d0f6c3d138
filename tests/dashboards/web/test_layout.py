"""The floor page's zone layout: deterministic, one zone per cell, neighbours side by side."""

from __future__ import annotations

import math
from typing import Any

from floorwalker.dashboards.web.layout import layout
from floorwalker.devices.registry import Registry, load_registry
from floorwalker.simulators.traffic import DEMO_REGISTRY
from tests.engine.conftest import STORE

LARGE = DEMO_REGISTRY.with_name("large-store.yaml")


def registry(zones: dict[str, dict[str, Any]]) -> Registry:
    return Registry.from_mapping({"store": "s9", "timezone": "UTC", "zones": zones})


def test_the_same_registry_always_gives_the_same_layout() -> None:
    first = layout(load_registry(LARGE))
    again = layout(load_registry(LARGE))
    assert first == again
    assert first.cells["entrance-main"] == again.cells["entrance-main"]


def test_every_zone_has_a_cell_of_its_own_on_a_grid_from_zero() -> None:
    for path in (DEMO_REGISTRY, LARGE):
        reg = load_registry(path)
        plan = layout(reg)
        cells = list(plan.cells.values())
        assert set(plan.cells) == set(reg.zones)
        assert len(set(cells)) == len(cells), path
        assert min(c for c, _ in cells) == 0 and min(r for _, r in cells) == 0
        assert plan.cols == max(c for c, _ in cells) + 1
        assert plan.rows == max(r for _, r in cells) + 1


def test_a_chain_of_zones_is_drawn_as_neighbouring_cells() -> None:
    plan = layout(
        registry(
            {
                "a": {"tags": ["entrance"], "adjacent": ["b"]},
                "b": {"adjacent": ["c"]},
                "c": {"adjacent": ["d"]},
                "d": {},
            }
        )
    )
    for x, y in (("a", "b"), ("b", "c"), ("c", "d")):
        assert math.dist(plan.cells[x], plan.cells[y]) == 1.0, (x, y, plan.cells)
    assert plan.edges == (("a", "b"), ("b", "c"), ("c", "d"))


def test_most_neighbours_of_the_demo_store_touch() -> None:
    plan = layout(load_registry(DEMO_REGISTRY))
    touching = [a for a, b in plan.edges if math.dist(plan.cells[a], plan.cells[b]) < 1.5]
    assert len(touching) >= 0.7 * len(plan.edges), (len(touching), len(plan.edges))


def test_zones_pinned_with_at_stay_where_they_are_written() -> None:
    plan = layout(
        registry(
            {
                "door": {"adjacent": ["till"], "at": [4, 1]},
                "till": {"at": [0, 0]},
                "shelf": {"adjacent": ["door"]},
            }
        )
    )
    assert plan.cells["door"] == (4.0, 1.0) and plan.cells["till"] == (0.0, 0.0)
    assert math.dist(plan.cells["shelf"], plan.cells["door"]) == 1.0


def test_a_part_no_adjacency_reaches_is_laid_out_to_the_right() -> None:
    plan = layout(
        registry(
            {
                "a": {"adjacent": ["b"]},
                "b": {},
                "office": {"adjacent": ["store-room"]},
                "store-room": {},
            }
        )
    )
    main = max(plan.cells["a"][0], plan.cells["b"][0])
    assert min(plan.cells["office"][0], plan.cells["store-room"][0]) > main
    assert math.dist(plan.cells["office"], plan.cells["store-room"]) == 1.0


def test_the_test_store_and_an_empty_one() -> None:
    plan = layout(Registry.from_mapping(STORE))
    assert len(set(plan.cells.values())) == len(STORE["zones"])  # backroom has no neighbours
    empty = layout(registry({}))
    assert empty.cells == {} and empty.cols == 0
