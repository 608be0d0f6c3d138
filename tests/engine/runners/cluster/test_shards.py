"""The worker's per-store engines (no Kafka): the same actions as replay, and restore."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from floorwalker.devices.registry import load_registries
from floorwalker.engine.core.guards import InMemoryGuardStore
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.engine.runners.cluster.shards import Shards
from floorwalker.engine.runners.replay import CaptureLine, Replay, ReplaySettings, read_capture
from floorwalker.engine.runners.step import reraise
from floorwalker.errors import StateError
from floorwalker.rules.loader import load_rules_for

ROOT = Path(__file__).resolve().parents[4]
DATA = ROOT / "floorwalker" / "simulators" / "data"
CATALOG = ROOT / "floorwalker" / "rules" / "catalog"
CAPTURE = DATA / "demo-capture.jsonl"
PROFILES = DATA / "demo-profiles.jsonl"
CAPTURE_TOPIC = "fw/s001/bell/bell-dairy"


def _replay(lines: list[CaptureLine]) -> list[bytes]:
    regs = load_registries([DATA / "demo-store.yaml"])
    rules = load_rules_for(CATALOG, regs)
    replay = Replay(
        rules, regs, ProfileBook.load(PROFILES), ReplaySettings(tail_s=0.0, on_error=reraise)
    )
    out: list[bytes] = []

    def write(at: float, topic: str, payload: object) -> None:
        out.append(orjson.dumps({"at": at, "topic": topic, "payload": payload}))

    for line in lines:
        replay.feed(line, write)
    replay.finish(write)
    return out


def _shards(
    profiles: ProfileBook | None = None, guards: InMemoryGuardStore | None = None
) -> Shards:
    regs = load_registries([DATA / "demo-store.yaml"])
    return Shards(
        load_rules_for(CATALOG, regs),
        regs,
        profiles=profiles or ProfileBook.load(PROFILES),
        guards=guards,
        on_error=reraise,
    )


def _lines() -> list[CaptureLine]:
    return [line for line in read_capture(CAPTURE) if isinstance(line, CaptureLine)]


def test_the_actions_of_replay_up_to_the_last_event() -> None:
    lines = _lines()
    shards = _shards()
    got: list[bytes] = []
    for line in lines:
        got.extend(shards.handle(line.topic, line.payload, lambda _s: None).records)
    engine = shards.engine("s001")
    assert engine is not None
    last = engine.clock
    want = [r for r in _replay(lines) if orjson.loads(r)["at"] <= last]
    assert len(want) > 10
    assert got == want


@pytest.mark.parametrize("lag", [0, 37])
def test_a_store_restored_from_its_snapshot_goes_on_as_if_never_moved(lag: int) -> None:
    """``lag``: the committed offset trails the table (records come again after the move)."""
    lines = _lines()
    half = len(lines) // 2
    table: dict[str, bytes] = {}
    # Guards and profiles are not in the table: the workers share them (Redis, live).
    book, guards = ProfileBook.load(PROFILES), InMemoryGuardStore()
    first, second = _shards(book, guards), _shards(book, guards)
    got: list[bytes] = []
    for offset, line in enumerate(lines[:half]):
        outcome = first.handle(line.topic, line.payload, table.get, offset)
        got.extend(outcome.records)
        assert outcome.snapshot is not None
        table[outcome.store] = outcome.snapshot
    for offset, line in enumerate(lines[half - lag :], start=half - lag):
        got.extend(second.handle(line.topic, line.payload, table.get, offset).records)
    assert (second.restored, second.skipped) == (1, lag)
    whole = _shards()
    want: list[bytes] = []
    for line in lines:
        want.extend(whole.handle(line.topic, line.payload, lambda _s: None).records)
    assert got == want


def test_a_foreign_table_value_is_refused() -> None:
    with pytest.raises(StateError):
        _shards().handle(CAPTURE_TOPIC, b"{}", lambda _s: b"not ours")


def test_a_record_of_an_unknown_store_is_a_dead_letter() -> None:
    outcome = _shards().handle("fw/nowhere/bell/b1", b'{"id":"x","ts":1.0}', lambda _s: None)
    assert outcome.snapshot is None
    (record,) = outcome.records
    assert orjson.loads(record)["payload"]["reason"] == "unknown_store"
