"""Replay in pieces: piece 1 (up to TS, saved) then piece 2 (restored, the rest)
writes exactly what one uninterrupted replay writes."""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from floorwalker.devices.events import Rejection
from floorwalker.devices.registry import Registry, load_registries
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.engine.core.settings import EngineSettings
from floorwalker.engine.core.testing import T0
from floorwalker.engine.runners.replay import (
    STATE_MAGIC,
    Capture,
    CaptureLine,
    Replay,
    ReplaySettings,
    Stop,
    read_state,
    write_atomic,
    write_jsonl,
)
from floorwalker.engine.runners.step import reraise
from floorwalker.errors import StateError
from floorwalker.rules.loader import load_rules, load_rules_for
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import CATALOG, PROFILES, STORE

DATA = Path(__file__).resolve().parents[3] / "floorwalker" / "simulators" / "data"
Line = CaptureLine | Rejection


@dataclass
class World:
    """Everything a replay is built from, so that each piece builds a fresh one."""

    rules: RuleSet
    registries: dict[str, Registry]
    profiles: ProfileBook | Path
    lateness: float = 0.0

    def replay(self) -> Replay:
        book = (
            ProfileBook.load(self.profiles)
            if isinstance(self.profiles, Path)
            else ProfileBook({p.shopper: p for p in PROFILES})
        )
        s = ReplaySettings(engine=EngineSettings(lateness_s=self.lateness), on_error=reraise)
        return Replay(self.rules, self.registries, book, s)


def whole(world: World, lines: Sequence[Line]) -> bytes:
    replay, buf = world.replay(), io.BytesIO()
    out = write_jsonl(buf)
    for line in lines:
        replay.feed(line, out)
    replay.finish(out)
    return buf.getvalue()


@dataclass
class Pieces:
    first: bytes
    second: bytes
    stop: Stop | None

    @property
    def joined(self) -> bytes:
        return self.first + self.second


def in_pieces(
    world: World, lines: Sequence[Line], until: float, state: Path | None = None
) -> Pieces:
    replay, buf = world.replay(), io.BytesIO()
    out = write_jsonl(buf)
    stop, rest = None, list(lines)
    for i, line in enumerate(lines):
        stop = replay.feed(line, out, until=until)
        if stop is not None:
            rest = list(lines[i:])
            break
    else:
        rest = []
    if stop is not None:
        replay.pause(until, out)
    data = replay.save_state(until=until, stop=stop)
    if state is not None:
        write_atomic(state, data)
        data = read_state(state)
    second, buf2 = world.replay(), io.BytesIO()
    out2 = write_jsonl(buf2)
    second.load_state(data)
    for line in rest:
        second.feed(line, out2)
    second.finish(out2)
    return Pieces(buf.getvalue(), buf2.getvalue(), stop)


def records(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in data.splitlines()]


# --------------------------------------------------------------------------- the demo capture


@pytest.fixture(scope="module")
def demo() -> World:
    registries = load_registries([DATA / "demo-store.yaml"])
    rules = load_rules_for(CATALOG, registries)
    return World(rules, dict(registries), DATA / "demo-profiles.jsonl")


@pytest.fixture(scope="module")
def demo_lines() -> list[Line]:
    return list(Capture(DATA / "demo-capture.jsonl"))


@pytest.fixture(scope="module")
def demo_whole(demo: World, demo_lines: list[Line]) -> bytes:
    return whole(demo, demo_lines)


def line_ts(line: Line) -> float:
    """The ts of a line's first message (demo lines all have one)."""
    assert isinstance(line, CaptureLine)
    body = orjson.loads(line.payload)
    return float((body[0] if isinstance(body, list) else body)["ts"])


@pytest.mark.parametrize("offset", [-5.0, 0.0, 61.0, 150.5, 299.999, 420.0, 590.0, 3600.0])
def test_any_cut_of_the_demo_capture_writes_what_one_replay_writes(
    demo: World, demo_lines: list[Line], demo_whole: bytes, offset: float
) -> None:
    cut = in_pieces(demo, demo_lines, line_ts(demo_lines[0]) + offset)
    assert cut.joined == demo_whole


def test_a_cut_inside_a_dwell(demo: World, demo_lines: list[Line], demo_whole: bytes) -> None:
    offers = [r for r in records(demo_whole) if r["payload"].get("rule") == "chilled-dwell-bogo"]
    at = offers[0]["at"]
    cut = in_pieces(demo, demo_lines, at - 3.0)  # 7 s into a 10 s dwell
    assert cut.joined == demo_whole
    assert offers[0] in records(cut.second)  # the dwell completed in the second piece


def test_a_cut_with_an_escalation_pending(
    demo: World, demo_lines: list[Line], demo_whole: bytes, tmp_path: Path
) -> None:
    alerts = [r for r in records(demo_whole) if r["payload"].get("rule") == "service-bell"]
    step2 = next(r for r in alerts if r["payload"]["step"] == 2)
    step1 = next(r for r in alerts if r["payload"]["id"] == step2["payload"]["id"])
    cut = in_pieces(demo, demo_lines, step2["at"] - 10.0, tmp_path / "state")
    assert cut.joined == demo_whole
    assert step1 in records(cut.first) and step2 in records(cut.second)
    # A timer due exactly at TS fires in the first piece.
    exact = in_pieces(demo, demo_lines, step2["at"])
    assert exact.joined == demo_whole and step2 in records(exact.first)


def test_a_cut_right_before_a_malformed_line(demo: World, demo_lines: list[Line]) -> None:
    ts = [line_ts(x) for x in demo_lines]
    i = next(i for i in range(2000, len(ts)) if ts[i + 1] > max(ts[: i + 1]))
    bad = CaptureLine(0, "fw/s001/pos/pos-1", b'{"id": 3')  # no readable ts
    unknown = CaptureLine(0, "fw/s001/bell/bell-nowhere", b'{"id": "x", "ts": 4e9}')
    lines = [*demo_lines[: i + 1], bad, unknown, *demo_lines[i + 1 :]]
    expected = whole(demo, lines)
    cut = in_pieces(demo, lines, line_ts(demo_lines[i]))
    assert cut.joined == expected
    dead = [r["payload"]["reason"] for r in records(cut.first) if "deadletter" in r["topic"]]
    assert dead == ["malformed_json", "unknown_device"]  # they went with the lines before
    assert cut.stop is not None and cut.stop.ts == line_ts(demo_lines[i + 1])


def test_the_first_line_of_the_rest_dead_letters_on_the_saved_arrival_clock(
    demo: World, demo_lines: list[Line]
) -> None:
    ts = [line_ts(x) for x in demo_lines]
    i = next(i for i in range(3000, len(ts)) if ts[i + 1] > max(ts[: i + 1]))
    nxt = demo_lines[i + 1]
    assert isinstance(nxt, CaptureLine)
    good = orjson.loads(nxt.payload)
    bad_item = {"ts": good["ts"], "beacon": "b-nowhere", "rssi": -50, "shopper": "app-x"}
    batch = CaptureLine(0, "fw/s001/beacon/gw-1", orjson.dumps([good, bad_item]))
    lines = [*demo_lines[: i + 1], batch, *demo_lines[i + 2 :]]
    cut = in_pieces(demo, lines, ts[i])
    assert cut.joined == whole(demo, lines)
    dead = [r for r in records(cut.second) if "deadletter" in r["topic"]]
    assert [d["payload"]["reason"] for d in dead] == ["unknown_device"]
    assert dead[0]["at"] == max(ts[: i + 1])  # the clock before the cut, not TS


def test_a_reorder_window_cuts_too(demo: World, demo_lines: list[Line]) -> None:
    late = World(demo.rules, demo.registries, demo.profiles, lateness=2.0)
    expected = whole(late, demo_lines)
    for offset in (100.0, 333.3):
        assert in_pieces(late, demo_lines, line_ts(demo_lines[0]) + offset).joined == expected


# --------------------------------------------------------------------------- synthetic captures

SHOPPERS = ["app-loyal", "app-nocons", "app-vip", "app-dormant", "app-bday", "app-anon"]
BEACONS = ["b-door", "b-dairy", "b-coffee", "b-cosm", "b-appl", "b-baby"]


@pytest.fixture(scope="module")
def small() -> World:
    return World(load_rules(CATALOG), {"s001": Registry.from_mapping(STORE)}, ProfileBook())


def _line(topic: str, payload: Any) -> CaptureLine:
    return CaptureLine(0, topic, payload if isinstance(payload, bytes) else orjson.dumps(payload))


step = st.one_of(
    st.tuples(
        st.just("linger"),
        st.sampled_from(SHOPPERS),
        st.sampled_from(BEACONS),
        st.integers(1, 25),
        st.integers(1, 3),
        st.booleans(),
    ),
    st.tuples(st.just("staff"), st.sampled_from(["band-07", "band-08"]), st.sampled_from(BEACONS)),
    st.tuples(st.just("bell"), st.sampled_from(["bell-dairy", "bell-appl"]), st.booleans()),
    st.tuples(
        st.just("pos"),
        st.sampled_from(SHOPPERS),
        st.sampled_from(["yogurt", "cosmetics", "infant-formula", "fruit"]),
    ),
    st.tuples(st.just("ack"), st.sampled_from(["ack", "done"])),
    st.tuples(st.just("bad"), st.sampled_from(["json", "device", "late"])),
)


NOT_JSON = b"{not json"


def synthetic(script: list[tuple[float, tuple[Any, ...]]]) -> list[CaptureLine]:
    """Capture lines from a script of (seconds since the previous step, step)."""
    lines: list[CaptureLine] = []
    t = T0
    for n, (dt, (kind, *args)) in enumerate(script):
        t += dt
        if kind == "linger":
            shopper, beacon, count, per_line, junk = args
            for k in range(0, count, per_line):
                batch: list[dict[str, Any]] = [
                    {"ts": t + j, "beacon": beacon, "rssi": -55, "shopper": shopper}
                    for j in range(k, min(count, k + per_line))
                ]
                if junk and per_line > 1:  # a bad item after the first: its own dead letter
                    batch.append({**batch[-1], "beacon": "b-nowhere"})
                lines.append(_line("fw/s001/beacon/gw-1", batch if per_line > 1 else batch[0]))
            t += count - 1
        elif kind == "staff":
            band, beacon = args
            seen = {"ts": t, "beacon": beacon, "rssi": -50, "band": band}
            lines.append(_line("fw/s001/beacon/gw-2", seen))
        elif kind == "bell":
            bell, again = args
            press = {"id": f"{bell}-{n}", "ts": t}
            lines.append(_line(f"fw/s001/bell/{bell}", press))
            if again:  # a QoS 1 redelivery
                lines.append(_line(f"fw/s001/bell/{bell}", press))
        elif kind == "pos":
            shopper, category = args
            item = {"id": f"l{n}", "ts": t, "receipt": f"r{n}", "category": category}
            lines.append(_line("fw/s001/pos/pos-1", {**item, "shopper": shopper, "sku": "x"}))
        elif kind == "ack":
            ack = {"id": f"a{n}", "ts": t, "alert": "al-unknown", "action": args[0]}
            lines.append(_line("fw/s001/band/band-07/ack", ack))
        elif args[0] == "json":
            lines.append(_line("fw/s001/pos/pos-1", NOT_JSON))
        elif args[0] == "device":
            lines.append(_line("fw/s001/bell/bell-nowhere", {"id": f"x{n}", "ts": t}))
        else:
            lines.append(_line("fw/s001/bell/bell-dairy", {"id": f"old{n}", "ts": t - 500}))
    return [CaptureLine(i, x.topic, x.payload) for i, x in enumerate(lines, start=1)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(  # an ack the engine refuses moves the clock past an escalation first
    script=[
        (0.0, ("staff", "band-07", "b-door")),
        (40.0, ("bell", "bell-dairy", False)),
        (32.0, ("ack", "ack")),
    ],
    where=0.576,  # TS = T0 + 71: after the escalation (T0 + 70), before the ack
    exact=False,
    lateness=0.0,
)
@given(
    script=st.lists(st.tuples(st.floats(0.0, 40.0), step), min_size=1, max_size=25),
    where=st.floats(0.0, 1.0),
    exact=st.booleans(),
    lateness=st.sampled_from([0.0, 2.0]),
)
def test_any_cut_of_any_small_capture(
    small: World,
    script: list[tuple[float, tuple[Any, ...]]],
    where: float,
    exact: bool,
    lateness: float,
) -> None:
    world = World(small.rules, small.registries, small.profiles, lateness)
    lines = synthetic(script)
    stamps = sorted({line_ts(x) for x in lines if x.payload != NOT_JSON})
    span = (stamps[-1] - stamps[0] + 60.0) if stamps else 60.0
    until = T0 - 5.0 + where * span
    if exact and stamps:  # on a line's own ts: that line goes into the first piece
        until = stamps[min(int(where * len(stamps)), len(stamps) - 1)]
    assert in_pieces(world, lines, until).joined == whole(world, lines)


# --------------------------------------------------------------------------- the state file


@pytest.fixture(scope="module")
def saved(demo: World, demo_lines: list[Line]) -> bytes:
    replay = demo.replay()
    for line in demo_lines[:500]:
        replay.feed(line, lambda *_: None)
    return replay.save_state()


def test_the_state_file_has_a_magic_a_version_and_an_orjson_document(saved: bytes) -> None:
    assert saved[:4] == STATE_MAGIC
    assert struct.unpack(">H", saved[4:6]) == (1,)
    doc = orjson.loads(saved[6:])
    assert set(doc) == {"stores", "lateness_s", "engine", "guards", "profiles", "replay"}
    assert doc["stores"] == ["s001"] and doc["replay"]["arrival"] > 0


def test_an_unknown_version_or_a_damaged_file_is_refused(demo: World, saved: bytes) -> None:
    newer = saved[:4] + struct.pack(">H", 99) + saved[6:]
    with pytest.raises(StateError, match="version 99"):
        demo.replay().load_state(newer)
    with pytest.raises(StateError, match="not a Floorwalker replay state"):
        demo.replay().load_state(b"garbage")
    with pytest.raises(StateError, match="damaged"):
        demo.replay().load_state(saved[: len(saved) // 2])
    doc = orjson.loads(saved[6:])
    broken = saved[:6] + orjson.dumps({**doc, "engine": "@@not base64@@"})
    with pytest.raises(StateError, match="damaged"):
        demo.replay().load_state(broken)


def test_other_stores_or_another_reorder_window_are_refused(
    demo: World, small: World, saved: bytes
) -> None:
    other = World(demo.rules, {"s001": small.registries["s001"]}, demo.profiles)
    other.replay().load_state(saved)  # same store id: accepted (its layout may have changed)
    s002 = Registry.from_mapping({**STORE, "store": "s002"})
    for regs in ({"s002": s002}, {**demo.registries, "s002": s002}):
        with pytest.raises(StateError, match="saved for store"):
            World(demo.rules, regs, demo.profiles).replay().load_state(saved)
    late = World(demo.rules, demo.registries, demo.profiles, lateness=2.0)
    with pytest.raises(StateError, match="lateness"):
        late.replay().load_state(saved)


def test_the_state_is_written_atomically(tmp_path: Path, saved: bytes) -> None:
    target = tmp_path / "state"
    target.write_bytes(b"old")
    write_atomic(target, saved)
    assert target.read_bytes() == saved
    assert [p.name for p in tmp_path.iterdir()] == ["state"]  # no temporary file left
    with pytest.raises(StateError, match="cannot read"):
        read_state(tmp_path / "missing")
