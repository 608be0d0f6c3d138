"""The separate OS processes of ``floorwalker bench live``: load generator, echo floor, probe.

Each runs as a :mod:`multiprocessing` *spawn* child (a fresh interpreter, its own
GIL and its own paho network thread) and talks to the orchestrator over a
:class:`multiprocessing.connection.Connection` with small dict commands:

* :func:`generator_main` publishes the bench workload (:func:`message`) with
  QoS 1 at a fixed offered rate for a bounded time and count, and reports what
  it sent and how fast it actually managed to publish;
* :func:`echo_main` is the **floor**: subscribe to the inbound topics (QoS 1),
  ``orjson.loads`` every message and publish a small QoS 1 reply for the
  messages that would trigger an action in the engine (bell presses,
  infant-formula POS lines) — MQTT + Python + JSON with no engine;
* :func:`probe_main` receives the engine's actions and the echo's replies,
  stamps their arrival, and answers every step-2 (escalated) alert with a
  ``done`` so that the bell's alert closes and the bell can be pressed again.

Every payload's ``ts`` is the generator's wall clock at the moment it called
``publish`` (the processes share one machine and one clock), and the engine
copies an event's ``ts`` into the actions it causes (an escalation's ``ts`` is
its due time). Latency is therefore ``arrival at the probe - ts``; the probe
keeps the action ids to count unique deliveries and duplicates.
"""

from __future__ import annotations

import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Final

import orjson

from floorwalker.devices.topics import (
    OutboundKind,
    ack_topic,
    action_filters,
    beacon_topic,
    bell_topic,
    inbound_filters,
    parse_outbound,
    pos_topic,
)
from floorwalker.engine.runners.mqtt import MqttClient

STORE: Final = "s001"
BELL_EVERY: Final = 200
"""Every 200th event (0.5 %) is a bell press -> an alert now and an escalation 1 s later."""
FORMULA_EVERY: Final = 100
"""Every 100th event (1 %, offset by 50) is an infant-formula POS line -> a coupon."""
FORMULA_OFFSET: Final = 50
BELLS: Final = 256
SHOPPERS: Final = 2000
REPLY_TOPIC: Final = "bench/echo/reply"
TERMINALS: Final = ("pos-1", "pos-2", "pos-3")


def bell_ids() -> list[str]:
    return [f"bb-{k:03d}" for k in range(BELLS)]


def shopper_ids() -> list[str]:
    return [f"app-bench{k:05d}" for k in range(SHOPPERS)]


def kind_of(i: int) -> str:
    """What event ``i`` of the workload is: ``bell``, ``formula`` or ``sighting``."""
    if i % BELL_EVERY == 0:
        return "bell"
    if i % FORMULA_EVERY == FORMULA_OFFSET:
        return "formula"
    return "sighting"


def count_kinds(start: int, n: int) -> dict[str, int]:
    """How many of events ``start .. start+n-1`` are bells and formula lines (exactly)."""

    def upto(m: int, every: int, offset: int) -> int:  # k in [0, m) with k % every == offset
        return (m - offset + every - 1) // every if m > offset else 0

    bells = upto(start + n, BELL_EVERY, 0) - upto(start, BELL_EVERY, 0)
    formula_all = upto(start + n, FORMULA_EVERY, FORMULA_OFFSET) - upto(
        start, FORMULA_EVERY, FORMULA_OFFSET
    )
    # a formula slot never coincides with a bell slot (offset 50 of 100 vs 0 of 200)
    return {"bell": bells, "formula": formula_all, "sighting": n - bells - formula_all}


class Workload:
    """The bench's message mix, deterministic in the event number ``i``."""

    def __init__(self, prefix: str, run: str, beacons: list[tuple[str, str]]) -> None:
        self.prefix = prefix
        self.run = run
        self.beacons = beacons
        """(beacon, gateway) pairs of the registry."""
        self.bells = bell_ids()
        self.shoppers = shopper_ids()
        self._beacon_topics = [beacon_topic(STORE, gw, prefix=prefix) for _, gw in beacons]
        self._bell_topics = [bell_topic(STORE, b, prefix=prefix) for b in self.bells]
        self._pos_topics = [pos_topic(STORE, t, prefix=prefix) for t in TERMINALS]

    def message(self, i: int, ts: float) -> tuple[str, bytes]:
        kind = kind_of(i)
        if kind == "bell":
            k = (i // BELL_EVERY) % BELLS
            payload: dict[str, Any] = {"id": f"p{self.run}-{i}", "ts": ts}
            return self._bell_topics[k], orjson.dumps(payload)
        shopper = self.shoppers[(i * 7) % SHOPPERS]
        if kind == "formula":
            payload = {
                "id": f"l{self.run}-{i}",
                "ts": ts,
                "receipt": f"r{self.run}-{i}",
                "sku": "6900000000017",
                "category": "infant-formula",
                "qty": 1,
                "price": 199.0,
                "shopper": shopper,
            }
            return self._pos_topics[i % len(TERMINALS)], orjson.dumps(payload)
        # a shopper stays near one beacon for a while (i // 50000 drifts it slowly)
        b = ((i * 7) % SHOPPERS + i // 50000) % len(self.beacons)
        payload = {"ts": ts, "beacon": self.beacons[b][0], "rssi": -60 - (i % 17)}
        payload["shopper"] = shopper
        return self._beacon_topics[b], orjson.dumps(payload)


# --------------------------------------------------------------------------- generator


def generator_main(conn: Connection, host: str, port: int, spec: dict[str, Any]) -> None:
    """Publish on command: ``{"op": "send", "rate": R|0, "seconds": S, "start": i0, "max": N}``.

    ``rate`` 0 means as fast as this process can. Every send is bounded by
    ``seconds`` (+5 s grace to collect PUBACKs) and by ``max`` messages.
    """
    beacons = [(str(b[0]), str(b[1])) for b in spec["beacons"]]
    load = Workload(spec["prefix"], spec["run"], beacons)
    acked = [0]
    lock = threading.Lock()

    def on_puback(_mid: int) -> None:
        with lock:
            acked[0] += 1

    client = MqttClient(
        f"bench-live-gen-{spec['run']}",
        host,
        port,
        on_puback=on_puback,
        max_inflight=int(spec.get("inflight", 1000)),
    ).connect()
    conn.send({"ready": True})
    try:
        while True:
            cmd = conn.recv()
            if cmd.get("op") != "send":
                break
            with lock:
                acked[0] = 0
            conn.send(_send(client, load, cmd, acked, lock))
    finally:
        client.close()


def _send(
    client: MqttClient,
    load: Workload,
    cmd: dict[str, Any],
    acked: list[int],
    lock: threading.Lock,
) -> dict[str, Any]:
    rate = float(cmd["rate"])
    seconds = float(cmd["seconds"])
    start = int(cmd["start"])
    cap = int(cmd["max"])
    total = min(cap, int(rate * seconds)) if rate > 0 else cap
    publish = client.publish
    message = load.message
    clock = time.time
    perf = time.perf_counter
    i = 0
    t0 = perf()
    wall0 = clock()
    deadline = t0 + seconds
    behind_max = 0
    while i < total:
        now = perf()
        if now >= deadline:
            break
        due = total if rate <= 0 else min(total, int((now - t0) * rate) + 1)
        if due <= i:
            time.sleep(min(0.001, (i + 1) / rate - (now - t0)))
            continue
        behind_max = max(behind_max, due - i)
        burst = min(due, i + 64)  # look at the clock again at least every 64 messages
        while i < burst:
            topic, payload = message(start + i, clock())
            publish(topic, payload)
            i += 1
    elapsed = perf() - t0
    with lock:
        acked_in_window = acked[0]
    grace = perf() + 5.0
    while perf() < grace:
        with lock:
            if acked[0] >= i:
                break
        time.sleep(0.005)
    with lock:
        acked_total = acked[0]
    return {
        "sent": i,
        "kinds": count_kinds(start, i),
        "elapsed_s": elapsed,
        "wall_start": wall0,
        "publish_rate": i / elapsed if elapsed > 0 else 0.0,
        "acked_in_window": acked_in_window,
        "acked": acked_total,
        "behind_max": behind_max,
    }


# --------------------------------------------------------------------------- echo floor


def echo_main(conn: Connection, host: str, port: int, spec: dict[str, Any]) -> None:
    """The floor: decode every inbound message, reply (QoS 1) to the triggering ones."""
    counts = {"received": 0, "replies": 0, "bad": 0}
    lock = threading.Lock()
    holder: list[MqttClient] = []

    def on_message(topic: str, payload: bytes) -> None:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            with lock:
                counts["bad"] += 1
            return
        reply = isinstance(obj, dict) and (
            "/bell/" in topic or obj.get("category") == "infant-formula"
        )
        with lock:
            counts["received"] += 1
            if reply:
                counts["replies"] += 1
        if reply and holder:
            holder[0].publish(REPLY_TOPIC, orjson.dumps({"id": obj.get("id"), "ts": obj.get("ts")}))

    client = MqttClient(
        f"bench-live-echo-{spec['run']}",
        host,
        port,
        subscriptions=inbound_filters(prefix=spec["prefix"]),
        on_message=on_message,
        max_inflight=int(spec.get("inflight", 1000)),
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


class _Probe:
    """What the probe received since the last ``collect``; paho's thread feeds it."""

    def __init__(self, prefix: str, run: str) -> None:
        self.prefix = prefix
        self.run = run
        self.lock = threading.Lock()
        self.client: MqttClient | None = None
        self.seen: set[tuple[str, int]] = set()
        self.acks = 0
        self.state: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        self.state = {
            "event_latency_s": [],
            "timer_lateness_s": [],
            "floor_latency_s": [],
            "offers": 0,
            "alerts_step1": 0,
            "alerts_step2": 0,
            "alerts_other": 0,
            "replies": 0,
            "duplicates": 0,
            "acks_sent": 0,
            "last_arrival": 0.0,
        }

    def on_message(self, topic: str, payload: bytes) -> None:
        arrival = time.time()
        try:
            obj = orjson.loads(payload)
            ts = float(obj["ts"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        with self.lock:
            ack = self._count(topic, obj, arrival, arrival - ts)
        if ack is not None and self.client is not None:
            band, alert, n = ack
            body = {"id": f"done-{self.run}-{n}", "ts": time.time(), "alert": alert}
            body["action"] = "done"
            self.client.publish(ack_topic(STORE, band, prefix=self.prefix), orjson.dumps(body))

    def _count(
        self, topic: str, obj: dict[str, Any], arrival: float, latency: float
    ) -> tuple[str, str, int] | None:
        state = self.state
        state["last_arrival"] = arrival
        if topic == REPLY_TOPIC:
            state["replies"] += 1
            state["floor_latency_s"].append(latency)
            return None
        step = int(obj.get("step", 0))
        key = (str(obj.get("id")), step)
        if key in self.seen:
            state["duplicates"] += 1
            return None
        self.seen.add(key)
        action = parse_outbound(topic, self.prefix)
        if action is None:
            state["alerts_other"] += 1
        elif action.kind is OutboundKind.OFFER:
            state["offers"] += 1
            state["event_latency_s"].append(latency)
        elif step == 1:
            state["alerts_step1"] += 1
            state["event_latency_s"].append(latency)
        elif step == 2:  # the escalation: ts is its due time; answer it so the bell frees up
            state["alerts_step2"] += 1
            state["timer_lateness_s"].append(latency)
            state["acks_sent"] += 1
            self.acks += 1
            assert action.target is not None  # an alert's band
            return action.target, key[0], self.acks
        else:
            state["alerts_other"] += 1
        return None


def probe_main(conn: Connection, host: str, port: int, spec: dict[str, Any]) -> None:
    """Receive actions and echo replies; ``{"op": "collect"}`` returns and resets what came."""
    prefix = spec["prefix"]
    probe = _Probe(prefix, spec["run"])
    subs = (*action_filters(prefix=prefix), REPLY_TOPIC)
    probe.client = MqttClient(
        f"bench-live-probe-{spec['run']}",
        host,
        port,
        subscriptions=subs,
        on_message=probe.on_message,
        max_inflight=1000,
    ).connect()
    conn.send({"ready": True})
    try:
        while True:
            cmd = conn.recv()
            op = cmd.get("op")
            if op == "peek":
                with probe.lock:
                    conn.send({k: v for k, v in probe.state.items() if not isinstance(v, list)})
            elif op == "collect":
                with probe.lock:
                    out = probe.state
                    probe.reset()
                conn.send(out)
            else:
                break
    finally:
        probe.client.close()
