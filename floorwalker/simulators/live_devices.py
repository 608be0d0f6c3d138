"""Simulated live devices: a store's traffic and its staff's wristbands, over MQTT.

Used by the live demo (:mod:`floorwalker.dashboards.demo`) and by ``floorwalker
simulate --mqtt`` (:func:`floorwalker.simulators.store.run_live`):

* :class:`TrafficPlayer` publishes synthetic traffic of a store
  (:mod:`floorwalker.simulators.traffic`) live with QoS 1, re-timed to the wall
  clock (every payload's ``ts`` is the moment it is published), at real time or
  ``speed`` times faster, in blocks of ``block_minutes`` of store time
  generated one after another with the next seed, so it runs until stopped;
* :class:`StaffSimulator` is the staff's wristbands: they acknowledge most
  alerts after a realistic delay (and report ``done`` later), decline some and
  let some pass, so escalations and response times show.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from floorwalker.devices.topics import ack_topic, alert_filter, parse_outbound
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.mqtt import MqttClient
from floorwalker.simulators.traffic import StoreLayout, TrafficSettings, generate

log = logging.getLogger("floorwalker.simulators.live")


@dataclass(frozen=True)
class StaffSettings:
    """How the simulated staff answer the alerts on their wristbands (wall-clock seconds)."""

    ack_share: float = 0.7
    decline_share: float = 0.1
    """The rest (0.2 by default) let the alert pass; the engine escalates it."""
    ack_delay_s: tuple[float, float] = (5.0, 60.0)
    decline_delay_s: tuple[float, float] = (2.0, 10.0)
    done_after_s: tuple[float, float] = (20.0, 120.0)
    """After acknowledging, the time until the member of staff reports ``done``."""


@dataclass(frozen=True, slots=True)
class StaffCounts:
    """What the (simulated) staff did with the alerts on their wristbands."""

    alerts: int = 0
    """Alert deliveries received (one per band and escalation step)."""
    acks: int = 0
    done: int = 0
    declined: int = 0
    unanswered: int = 0
    """Deliveries the wearer let pass (the engine escalates those)."""


# --------------------------------------------------------------------------- the store


class TrafficPlayer:
    """Publishes synthetic store traffic live, re-timed to the wall clock, until stopped."""

    def __init__(
        self,
        layout: StoreLayout,
        known: Sequence[str],
        host: str | BrokerAddress,
        port: int | None = None,
        *,
        shoppers: int = 40,
        seed: int = 7,
        speed: float = 1.0,
        block_minutes: float = 30.0,
        warm_minutes: float = 0.0,
        prefix: str = "fw",
        client_id: str = "floorwalker-demo-store",
    ) -> None:
        self.layout = layout
        # Consecutive blocks overlap (the last shoppers of one are still in the
        # store when the next one's arrive): give them disjoint known shoppers,
        # so that nobody is in two places at once.
        self.pools = (tuple(known[0::2]), tuple(known[1::2]))
        self.host, self.port = host, port
        self.per_block = round(shoppers * block_minutes / 10.0)
        self.seed, self.speed, self.prefix = seed, speed, prefix
        self.block_s = block_minutes * 60.0
        self.warm_s = warm_minutes * 60.0
        self.client_id = client_id
        self.published = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: MqttClient | None = None

    def start(self) -> TrafficPlayer:
        self._client = MqttClient(self.client_id, self.host, self.port, max_inflight=200).connect()
        self._thread = threading.Thread(
            target=self._run, name="floorwalker-demo-store", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def messages(self, t0: float) -> Iterator[tuple[float, str, dict[str, Any]]]:
        """``(store ts, topic, payload)`` from ``t0`` on, blocks merged in ts order, endless."""
        heap: list[tuple[float, int, int, str, dict[str, Any], Iterator[Any]]] = []
        order = itertools.count()

        def push(block: int, it: Iterator[tuple[float, str, dict[str, Any]]]) -> None:
            item = next(it, None)
            if item is not None:
                heapq.heappush(heap, (item[0], next(order), block, item[1], item[2], it))

        newest, next_at = -1, t0
        while True:
            while not heap or heap[0][0] >= next_at:
                newest += 1
                push(newest, self._block(newest, next_at))
                next_at += self.block_s
            ts, _, block, topic, payload, it = heapq.heappop(heap)
            push(block, it)
            if block < newest and "band" in payload:
                continue  # the staff walk on in the newest block only
            yield ts, topic, payload

    def _block(self, k: int, start: float) -> Iterator[tuple[float, str, dict[str, Any]]]:
        cfg = TrafficSettings(
            shoppers=self.per_block,
            minutes=self.block_s / 60.0,
            seed=self.seed + k,
            start=start,
            known=self.pools[k % 2],
        )
        for topic, payload in generate(self.layout, cfg).messages(self.prefix):
            # Message ids and receipts restart in every block: keep them unique,
            # or the engine would drop them as duplicates.
            for key in ("id", "receipt"):
                if key in payload:
                    payload[key] = f"{payload[key]}.{k}"
            yield float(payload["ts"]), topic, payload

    def _run(self) -> None:
        client = self._client
        assert client is not None
        t0, mono0 = time.time(), time.monotonic()
        try:
            for ts, topic, payload in self.messages(t0 - self.warm_s):
                if ts < t0 and "online" not in payload:
                    continue  # the warm start: only the devices' status is kept
                delay = mono0 + (ts - t0) / self.speed - time.monotonic()
                if (delay > 0 and self._stop.wait(delay)) or self._stop.is_set():
                    return
                payload["ts"] = round(time.time(), 3)
                client.publish(topic, orjson.dumps(payload))
                self.published += 1
        except Exception as exc:
            log.exception("the simulated store stopped")
            self.error = exc


# --------------------------------------------------------------------------- the staff


class StaffSimulator:
    """Wristbands that answer alerts: most acknowledge (then report done), some decline,
    some never answer. Only the first acknowledgement of an alert is sent."""

    def __init__(
        self,
        host: str | BrokerAddress,
        port: int | None,
        store: str,
        settings: StaffSettings | None = None,
        *,
        prefix: str = "fw",
        seed: int = 7,
        client_id: str = "floorwalker-demo-staff",
    ) -> None:
        self.host, self.port, self.store, self.prefix = host, port, store, prefix
        self.settings = settings or StaffSettings()
        self.client_id = client_id
        self._rng = random.Random(seed)
        self._due: list[tuple[float, int, str, str, str]] = []
        """(monotonic due time, seq, band, alert id, action)"""
        self._seq = itertools.count()
        self._acked: set[str] = set()
        self._counts = {"alerts": 0, "acks": 0, "done": 0, "declined": 0, "unanswered": 0}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._client: MqttClient | None = None

    def start(self) -> StaffSimulator:
        self._client = MqttClient(
            self.client_id,
            self.host,
            self.port,
            subscriptions=(alert_filter(prefix=self.prefix, store=self.store),),
            on_message=self._on,
        ).connect()
        self._thread = threading.Thread(
            target=self._run, name="floorwalker-demo-staff", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def counts(self) -> StaffCounts:
        with self._cond:
            return StaffCounts(**self._counts)

    def _on(self, topic: str, payload: bytes) -> None:
        """The network thread: decide how this wearer answers, and when."""
        parsed = parse_outbound(topic, self.prefix)
        if parsed is None or parsed.target is None:
            return
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
            return
        band, alert = parsed.target, obj["id"]
        s, rng = self.settings, self._rng
        with self._cond:
            self._counts["alerts"] += 1
            if alert in self._acked:
                return
            draw = rng.random()
            if draw < s.ack_share:
                self._schedule(rng.uniform(*s.ack_delay_s), band, alert, "ack")
            elif draw < s.ack_share + s.decline_share:
                self._schedule(rng.uniform(*s.decline_delay_s), band, alert, "decline")
            else:
                self._counts["unanswered"] += 1

    def _schedule(self, delay_s: float, band: str, alert: str, action: str) -> None:
        heapq.heappush(
            self._due, (time.monotonic() + delay_s, next(self._seq), band, alert, action)
        )
        self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                _, _, band, alert, action = heapq.heappop(self._due)
                if action != "done" and alert in self._acked:
                    continue  # somebody else took it meanwhile
                if action == "ack":
                    self._acked.add(alert)
                    self._counts["acks"] += 1
                    self._schedule(
                        self._rng.uniform(*self.settings.done_after_s), band, alert, "done"
                    )
                else:
                    self._counts["done" if action == "done" else "declined"] += 1
                n = next(self._seq)
            self._send(band, alert, action, n)

    def _send(self, band: str, alert: str, action: str, n: int) -> None:
        client = self._client
        if client is None:
            return
        topic = ack_topic(self.store, band, prefix=self.prefix)
        payload = {"id": f"{band}-{action}-{n}", "ts": round(time.time(), 3), "alert": alert}
        payload["action"] = action
        client.publish(topic, orjson.dumps(payload))
