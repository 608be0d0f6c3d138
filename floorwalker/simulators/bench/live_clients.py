"""The paho processes of ``floorwalker bench live``: the echo floor and the probe.

Each runs as a :mod:`multiprocessing` *spawn* child (its own interpreter and
GIL) and takes small dict commands over a
:class:`multiprocessing.connection.Connection`. The background load comes from
:mod:`.live_load` (raw sockets); these two make and watch the traffic the
targets are measured on:

* :func:`probe_main` presses bells at a steady rate (20/s by default) and walks
  a few *dwellers* between the two bench dwell zones (a sighting every
  :data:`DWELL_SIGHTING_S`, a new zone every :data:`DWELL_STAY_S`); it receives
  every alert and offer of the target under test, stamps their arrival, and
  answers each step-2 (escalated) alert with ``done`` so the bell's alert closes.
  Every press and sighting carries the wall clock at ``publish`` as ``ts``; the
  targets copy an event's ``ts`` into the actions it causes, and a timer's due
  time into the actions it fires. So press -> step-1 alert latency is
  ``arrival - ts`` of a step-1 alert, and a timer's lateness is ``arrival - ts``
  of an escalation (step 2) or a dwell offer;
* :func:`echo_main` is the **floor**: a minimal paho subscriber on the inbound
  topics (QoS 1) that ``orjson.loads`` every message, counts the events in it,
  and answers each bell press with a step-1 alert carrying the press's ``ts``:
  MQTT + Python + JSON, no engine.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Final

import orjson

from floorwalker.devices.topics import (
    OutboundKind,
    ack_topic,
    action_filters,
    alert_topic,
    beacon_topic,
    bell_topic,
    inbound_filters,
    parse_outbound,
)
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.mqtt import MqttClient

STORE: Final = "s001"
BELLS: Final = 256
DWELLERS: Final = 20
DWELL_ZONES: Final = ("bench-dwell-a", "bench-dwell-b")
DWELL_BEACONS: Final = ("bd-a-1", "bd-b-1")
DWELL_GATEWAY: Final = "gw-1"
DWELL_TAG: Final = "bench-dwell"
DWELL_AT_LEAST_S: Final = 3.0
DWELL_STAY_S: Final = 8.0
DWELL_SIGHTING_S: Final = 0.5
ESCALATE_S: Final = 1.0
PRESS_RATE: Final = 20.0


def bell_ids() -> list[str]:
    return [f"bb-{k:03d}" for k in range(BELLS)]


def dweller_ids() -> list[str]:
    return [f"app-dwell{k:02d}" for k in range(DWELLERS)]


def broker_of(spec: dict[str, Any]) -> BrokerAddress:
    address = BrokerAddress(str(spec["host"]), int(spec["port"]))
    return address.with_identity(str(spec["username"]), str(spec["password"]))


# --------------------------------------------------------------------------- echo floor


def echo_main(conn: Connection, spec: dict[str, Any]) -> None:
    """The floor: decode every inbound message, answer each bell press with a step-1 alert."""
    prefix, band = str(spec["prefix"]), str(spec["band"])
    reply_topic = alert_topic(STORE, band, prefix=prefix)
    bell_level = f"{prefix}/{STORE}/bell/"
    counts = {"messages": 0, "events": 0, "replies": 0, "bad": 0}
    lock = threading.Lock()
    holder: list[MqttClient] = []

    def on_message(topic: str, payload: bytes) -> None:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            with lock:
                counts["bad"] += 1
            return
        n = len(obj) if isinstance(obj, list) else 1
        reply = topic.startswith(bell_level) and isinstance(obj, dict)
        with lock:
            counts["messages"] += 1
            counts["events"] += n
            counts["replies"] += reply
        if reply and holder:
            body = {"id": obj.get("id"), "ts": obj.get("ts"), "step": 1}
            holder[0].publish(reply_topic, orjson.dumps(body))

    client = MqttClient(
        f"bench-live-echo-{spec['run']}",
        broker_of(spec),
        subscriptions=inbound_filters(prefix=prefix, store=STORE),
        on_message=on_message,
        max_inflight=1000,
    ).connect()
    holder.append(client)
    conn.send({"ready": True})
    try:
        while True:
            cmd = conn.recv()
            if cmd.get("op") != "count":
                break
            with lock:
                conn.send(dict(counts))
    finally:
        client.close()


# --------------------------------------------------------------------------- probe


def _fresh() -> dict[str, Any]:
    return {
        "press_latency_s": [],
        "escalation_lateness_s": [],
        "dwell_lateness_s": [],
        "alerts_step1": 0,
        "alerts_step2": 0,
        "alerts_other": 0,
        "offers": 0,
        "duplicates": 0,
        "acks_sent": 0,
        "presses": 0,
        "dwell_sightings": 0,
        "dwell_stays": 0,
        "last_arrival": 0.0,
    }


@dataclass
class _Schedule:
    """What the probe publishes during a step: presses and dweller sightings, in time order."""

    prefix: str
    press_rate: float
    dwell: bool
    t0: float = field(default_factory=time.time)
    heap: list[tuple[float, int, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.press_rate > 0:
            self.heap.append((self.t0 + 1.0 / self.press_rate, 0, "press", 0))
        if self.dwell:
            for d in range(DWELLERS):
                offset = DWELL_SIGHTING_S * d / DWELLERS
                self.heap.append((self.t0 + offset, 1 + d, "dwell", 0))
        heapq.heapify(self.heap)


class _Probe:
    """What came since the last ``collect``; paho's network thread feeds it."""

    def __init__(self, run: str, client_factory: Callable[[_Probe], MqttClient]) -> None:
        self.run = run
        self.lock = threading.Lock()
        self.seen: set[tuple[str, int]] = set()
        self.state = _fresh()
        self.prefix = ""
        self.bells = bell_ids()
        self.dwellers = dweller_ids()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pressed = 0
        """Presses ever made: ids stay unique across steps (a repeated id is a duplicate)."""
        self.answered = 0
        self.client = client_factory(self)

    # -------------------------------------------------------------- receiving

    def on_message(self, topic: str, payload: bytes) -> None:
        arrival = time.time()
        try:
            obj = orjson.loads(payload)
            ts = float(obj["ts"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        with self.lock:
            ack = self._count(topic, obj, arrival, arrival - ts)
        if ack is not None:
            band, alert, n = ack
            body = {"id": f"done-{self.run}-{n}", "ts": time.time(), "alert": alert}
            body["action"] = "done"
            self.client.publish(ack_topic(STORE, band, prefix=self.prefix), orjson.dumps(body))

    def _count(
        self, topic: str, obj: dict[str, Any], arrival: float, latency: float
    ) -> tuple[str, str, int] | None:
        state = self.state
        action = parse_outbound(topic, self.prefix) if self.prefix else None
        if action is None:
            return None  # another target's leftovers
        state["last_arrival"] = arrival
        step = int(obj.get("step", 0) or 0)
        key = (str(obj.get("id")), step)
        if key in self.seen:
            state["duplicates"] += 1
            return None
        self.seen.add(key)
        if action.kind is OutboundKind.OFFER:
            state["offers"] += 1
            state["dwell_lateness_s"].append(latency)
        elif step == 1:
            state["alerts_step1"] += 1
            state["press_latency_s"].append(latency)
        elif step == 2:  # its ts is the escalation's due time; close it so the bell frees up
            state["alerts_step2"] += 1
            state["escalation_lateness_s"].append(latency)
            state["acks_sent"] += 1
            self.answered += 1
            if action.target is not None:
                return action.target, key[0], self.answered
        else:
            state["alerts_other"] += 1
        return None

    # -------------------------------------------------------------- publishing

    def start(self, prefix: str, press_rate: float, dwell: bool) -> None:
        self.stop()
        with self.lock:
            self.prefix = prefix
        self._stop.clear()
        schedule = _Schedule(prefix, press_rate, dwell)
        self._thread = threading.Thread(
            target=self._publish, args=(schedule,), name="bench-probe", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _publish(self, s: _Schedule) -> None:
        heap, publish = s.heap, self.client.publish
        while heap and not self._stop.is_set():
            at, who, kind, n = heap[0]
            wait = at - time.time()
            if wait > 0:
                self._stop.wait(min(wait, 0.05))
                continue
            heapq.heapreplace(heap, self._next(s, at, who, kind, n))
            if kind == "press":
                bell = self.bells[self.pressed % len(self.bells)]
                self.pressed += 1
                body = {"id": f"p{self.run}-{s.prefix}-{self.pressed}", "ts": time.time()}
                publish(bell_topic(STORE, bell, prefix=s.prefix), orjson.dumps(body))
                with self.lock:
                    self.state["presses"] += 1
            else:
                self._dwell_sighting(s, at, who - 1, n)

    @staticmethod
    def _next(s: _Schedule, at: float, who: int, kind: str, n: int) -> tuple[float, int, str, int]:
        if kind == "press":
            return (s.t0 + (n + 2) / s.press_rate, who, kind, n + 1)
        return (at + DWELL_SIGHTING_S, who, kind, n + 1)

    def _dwell_sighting(self, s: _Schedule, at: float, d: int, n: int) -> None:
        # Dweller d changes zone every DWELL_STAY_S, the dwellers' changes spread out.
        phase = (at - s.t0) / DWELL_STAY_S + d / DWELLERS
        zone = int(phase) % 2
        beacon = DWELL_BEACONS[zone]
        body = {"ts": time.time(), "beacon": beacon, "rssi": -55, "shopper": self.dwellers[d]}
        self.client.publish(beacon_topic(STORE, DWELL_GATEWAY, prefix=s.prefix), orjson.dumps(body))
        prev = (at - DWELL_SIGHTING_S - s.t0) / DWELL_STAY_S + d / DWELLERS
        with self.lock:
            self.state["dwell_sightings"] += 1
            if n > 0 and int(prev) != int(phase):
                self.state["dwell_stays"] += 1  # a stay begun; it dwells unless the step ends


def probe_main(conn: Connection, spec: dict[str, Any]) -> None:
    """``start`` (prefix, press_rate, dwell), ``stop``, ``peek``, ``collect``; else quit."""
    prefixes = [str(p) for p in spec["prefixes"]]

    def client(probe: _Probe) -> MqttClient:
        subs = [f for p in prefixes for f in action_filters(prefix=p, store=STORE)]
        return MqttClient(
            f"bench-live-probe-{spec['run']}",
            broker_of(spec),
            subscriptions=subs,
            on_message=probe.on_message,
            max_inflight=1000,
        )

    probe = _Probe(str(spec["run"]), client)
    probe.client.connect()
    conn.send({"ready": True})
    try:
        while True:
            cmd = conn.recv()
            op = cmd.get("op")
            if op == "start":
                probe.start(str(cmd["prefix"]), float(cmd["press_rate"]), bool(cmd["dwell"]))
                conn.send({"ok": True})
            elif op == "stop":
                probe.stop()
                conn.send({"ok": True})
            elif op == "peek":
                with probe.lock:
                    conn.send({k: v for k, v in probe.state.items() if not isinstance(v, list)})
            elif op == "collect":
                with probe.lock:
                    out, probe.state = probe.state, _fresh()
                conn.send(out)
            else:
                break
    finally:
        probe.stop()
        probe.client.close()
