"""The durable outbox: pending until PUBACK, kept across a restart, deduplicated by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from floorwalker.engine.runners.outbox import Outbox, OutboxSettings
from floorwalker.errors import ConfigError


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_pending_until_done_and_again_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    box = Outbox(path)
    a = box.add("fw/s/shopper/x/offer", b'{"id":"o-1"}', "o-1")
    b = box.add("fw/s/deadletter", b'{"reason":"bad"}')
    c = box.add("fw/s/band/b/alert", b'{"id":"a-1","step":1}', "a-1/1/b")
    assert a is not None and b is not None and c is not None
    box.done(a)
    box.close()  # as a kill would leave it: b and c never confirmed

    again = Outbox(path)
    left = again.pending()
    assert [(e.key, e.topic, e.payload) for e in left] == [
        (None, "fw/s/deadletter", b'{"reason":"bad"}'),
        ("a-1/1/b", "fw/s/band/b/alert", b'{"id":"a-1","step":1}'),
    ]
    # The engine decides them again after its restore: not a second publish.
    assert again.add("fw/s/shopper/x/offer", b'{"id":"o-1"}', "o-1") is None
    assert again.add("fw/s/band/b/alert", b"{}", "a-1/1/b") is None
    assert again.duplicates == 2
    fresh = again.add("fw/s/band/b/alert", b"{}", "a-1/2/b")
    assert fresh is not None and fresh > c, "entry numbers go on from the log"
    for entry in left:
        again.done(entry.seq)
    again.done(fresh)
    again.close()
    assert Outbox(path).pending() == []


def test_a_key_is_forgotten_after_the_dedup_window(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.jsonl", OutboxSettings(dedup_s=60.0), clock=clock)
    seq = box.add("t", b"{}", "k")
    assert seq is not None
    box.done(seq)
    clock.now += 30
    assert box.add("t", b"{}", "k") is None
    clock.now += 31
    assert box.add("t", b"{}", "k") is not None


def test_a_pending_key_is_refused_however_old(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.jsonl", OutboxSettings(dedup_s=60.0), clock=clock)
    assert box.add("t", b"{}", "k") is not None
    clock.now += 3600  # the broker was away for an hour: still not confirmed
    assert box.add("t", b"{}", "k") is None


def test_at_most_max_keys_are_remembered(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.jsonl", OutboxSettings(max_keys=3))
    for i in range(5):
        seq = box.add("t", b"{}", f"k{i}")
        assert seq is not None
        box.done(seq)
    assert box.add("t", b"{}", "k0") is not None, "the oldest keys were forgotten"
    assert box.add("t", b"{}", "k4") is None


def test_compaction_keeps_pending_entries_and_recent_keys(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    box = Outbox(path, OutboxSettings(compact_after=50))
    keep = box.add("t", b'{"keep":1}', "keep")
    assert keep is not None
    for i in range(200):
        seq = box.add("t", b"{}", f"k{i}")
        assert seq is not None
        box.done(seq)
    entries = [line for line in path.read_bytes().splitlines() if line.startswith(b'{"n"')]
    assert len(entries) <= 51, "the log was rewritten along the way, done entries left out"
    box.close()
    again = Outbox(path)
    assert [e.payload for e in again.pending()] == [b'{"keep":1}']
    assert again.add("t", b"{}", "k199") is None, "recent keys survive compaction"


def test_a_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    box = Outbox(path)
    assert box.add("t", b'{"a":1}', "a") is not None
    box.close()
    with path.open("ab") as out:
        out.write(b'{"n": 9, "t": "t", "p": "{\\"b\\"')  # a power cut mid-write
    again = Outbox(path)
    assert again.torn == 1
    assert [e.key for e in again.pending()] == ["a"]


def test_one_runner_per_outbox(tmp_path: Path) -> None:
    first = Outbox.open(tmp_path, "edge/1")
    assert first.path.name == "outbox-edge_1.jsonl"
    with pytest.raises(ConfigError, match="client id"):
        Outbox.open(tmp_path, "edge/1")
    first.close()
    Outbox.open(tmp_path, "edge/1").close()
