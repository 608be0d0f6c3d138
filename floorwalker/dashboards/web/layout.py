"""Where the floor page draws each zone: a grid layout made from the registry's adjacency.

Pure and deterministic: the same registry always gives the same picture, so a
store manager finds the dairy where it was yesterday. Zones the registry pins
(``at: [column, row]``) stay where they are written; the others are placed
breadth-first from the pinned zones (or from the entrance, or the first zone),
each on the free grid cell next to the zone that reached it that lies closest
to its other neighbours already placed. A part of the store that no adjacency
reaches is laid out to the right of the rest.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from floorwalker.devices.registry import Registry

Cell = tuple[float, float]


@dataclass(frozen=True, slots=True)
class FloorLayout:
    cells: Mapping[str, Cell]
    """zone -> (column, row), the top-left zone at (0, 0)."""
    edges: tuple[tuple[str, str], ...]
    """Adjacent zone pairs, each once, sorted."""
    cols: float
    rows: float


def layout(registry: Registry) -> FloorLayout:
    """The zones of ``registry`` on a grid (see the module docstring)."""
    order = list(registry.zones)
    graph = _graph(registry)
    cells: dict[str, Cell] = {z.id: z.at for z in registry.zones.values() if z.at is not None}
    taken = {_key(c) for c in cells.values()}
    todo = deque(z for z in order if z in cells)
    while len(cells) < len(order):
        if not todo:
            root = _root(registry, cells)
            cells[root] = _beside(cells)
            taken.add(_key(cells[root]))
            todo.append(root)
        here = todo.popleft()
        for nxt in graph[here]:
            if nxt in cells:
                continue
            placed = [cells[n] for n in graph[nxt] if n in cells]
            cells[nxt] = _free_near(cells[here], placed, taken)
            taken.add(_key(cells[nxt]))
            todo.append(nxt)
    return _normalised(cells, graph)


def _graph(registry: Registry) -> dict[str, list[str]]:
    """Symmetric adjacency, neighbours in registry order (the layout's tie-break)."""
    rank = {z: i for i, z in enumerate(registry.zones)}
    links: dict[str, set[str]] = {z: set() for z in registry.zones}
    for zone in registry.zones.values():
        for other in zone.adjacent:
            if other != zone.id:
                links[zone.id].add(other)
                links[other].add(zone.id)
    return {z: sorted(n, key=rank.__getitem__) for z, n in links.items()}


def _root(registry: Registry, cells: Mapping[str, Cell]) -> str:
    """Where an unplaced part starts: its entrance if it has one, else its first zone."""
    left = [z for z in registry.zones.values() if z.id not in cells]
    entrance = [z for z in left if "entrance" in z.tags]
    return (entrance or left)[0].id


def _beside(cells: Mapping[str, Cell]) -> Cell:
    if not cells:
        return (0.0, 0.0)
    right = max(c for c, _ in cells.values())
    top = min(r for _, r in cells.values())
    return (math.floor(right) + 2.0, float(math.floor(top)))


def _key(cell: Cell) -> tuple[int, int]:
    return round(cell[0]), round(cell[1])


def _free_near(origin: Cell, neighbours: list[Cell], taken: set[tuple[int, int]]) -> Cell:
    """The free cell nearest ``origin`` (ring by ring), closest to the placed neighbours."""
    ox, oy = _key(origin)
    radius = 1
    while True:
        ring = [
            (ox + dx, oy + dy)
            for dy in range(-radius, radius + 1)
            for dx in range(-radius, radius + 1)
            if max(abs(dx), abs(dy)) == radius and (ox + dx, oy + dy) not in taken
        ]
        if ring:
            best = min(
                ring,
                key=lambda c: (
                    round(sum(math.dist(c, n) for n in neighbours), 9),
                    abs(c[0] - ox) + abs(c[1] - oy),  # straight before diagonal
                    abs(c[1] - oy),  # a floor reads left to right: along the row first,
                    ox - c[0],  # to the right before the left,
                    oy - c[1],  # and below before above
                ),
            )
            return float(best[0]), float(best[1])
        radius += 1


def _normalised(cells: Mapping[str, Cell], graph: Mapping[str, list[str]]) -> FloorLayout:
    if not cells:
        return FloorLayout(cells={}, edges=(), cols=0.0, rows=0.0)
    min_x = min(c for c, _ in cells.values())
    min_y = min(r for _, r in cells.values())
    shifted = {z: (c - min_x, r - min_y) for z, (c, r) in cells.items()}
    edges = sorted({(a, b) if a < b else (b, a) for a, ns in graph.items() for b in ns})
    cols = max(c for c, _ in shifted.values()) + 1
    rows = max(r for _, r in shifted.values()) + 1
    return FloorLayout(cells=shifted, edges=tuple(edges), cols=cols, rows=rows)
