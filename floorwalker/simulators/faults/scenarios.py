"""The fault scenarios: each builds its own stack, injects one fault, and counts.

Every scenario returns a :class:`Result`: what was offered and what became of
it (processed, dead-lettered, shed), what was **lost** (offered, no outcome)
and **doubled** (a second coupon or alert for one cause: a new id), latencies,
and notes. Wire-level repeats of one id (QoS 1 is at least once; a device
deduplicates by id) are reported as ``redelivered``, not as doubled. ``ok`` is
the scenario's pass criterion; ``problems`` says what failed.

``quick`` scales every scenario down for CI (about two minutes in all).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from floorwalker.devices.broker_config import ENGINE_USER
from floorwalker.devices.topics import ack_topic, alert_topic, beacon_topic, bell_topic, offer_topic
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.memory import DEFAULT_QUIET_S
from floorwalker.engine.runners.mqtt import MqttClient
from floorwalker.errors import ServiceError
from floorwalker.simulators.faults import harness as h
from floorwalker.simulators.faults.rawmqtt import Make, RawPublisher

PREFIX: Final = "fw"
DAIRY: Final = "b-dairy-1"
ALERT_P99_MS: Final = 100.0
"""Step-1 alerts with Redis paused or stopped: p99 press -> alert (issue 10)."""
RSS_GROWTH_MB: Final = 64.0
"""Most the runner's RSS may grow over its baseline during a 3x overload."""
RSS_AFTER_MB: Final = 16.0
"""Most it may stay above its baseline once the backlog is drained and the runner gave
its memory back (measured: +4 MB after a 60 s overload; +30 MB before it did)."""
OVERLOAD_AUTOSAVE_S: Final = 60


@dataclass
class Result:
    name: str
    ok: bool = True
    offered: int | None = None
    processed: int | None = None
    deadlettered: int | None = None
    shed: int | None = None
    lost: int = 0
    doubled: int = 0
    redelivered: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)

    def check(self, condition: bool, problem: str) -> None:
        if not condition:
            self.fail(problem)

    def line(self) -> str:
        """The summary line ``floorwalker faults`` prints."""

        def n(v: int | None) -> str:
            return "-" if v is None else str(v)

        parts = [
            f"{self.name:<15} {'ok  ' if self.ok else 'FAIL'}",
            f"offered={n(self.offered)} processed={n(self.processed)}",
            f"deadlettered={n(self.deadlettered)} shed={n(self.shed)}",
            f"lost={self.lost} doubled={self.doubled} redelivered={self.redelivered}",
        ]
        if self.latency_ms:
            parts.append(" ".join(f"{k}={v:.1f}ms" for k, v in self.latency_ms.items()))
        parts.append(f"({self.seconds:.0f} s)")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "offered": self.offered,
            "processed": self.processed,
            "deadlettered": self.deadlettered,
            "shed": self.shed,
            "lost": self.lost,
            "doubled": self.doubled,
            "redelivered": self.redelivered,
            "latency_ms": self.latency_ms,
            "notes": self.notes,
            "problems": self.problems,
            "seconds": round(self.seconds, 1),
        }


@dataclass(frozen=True)
class Context:
    workdir: Path
    quick: bool
    say: Callable[[str], None] = lambda _msg: None

    def dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def _latency(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(v * 1000.0 for v in values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": pct(0.5), "p99": pct(0.99), "max": ordered[-1]}


def _wait(condition: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    """Poll ``condition`` until true or ``timeout``; a runner not answering yet is "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return True
        except OSError:  # its metrics port is not open yet (or it is restarting)
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(every)


AISLES: Final = ("b-dairy-1", "b-produce-1", "b-bakery-1", "b-frozen-1", "b-pantry-1")


def _sightings(
    shoppers: tuple[str, ...], batch: int, bad_every: int, beacons: tuple[str, ...] = AISLES
) -> Make:
    """Gateway messages of ``batch`` sightings; every ``bad_every``-th names no known beacon.

    The bodies are encoded once, with a placeholder for ``ts`` (the publisher's
    clock when it sends them): the publisher must outrun the runner several times
    over on the same two cores.
    """
    topic = beacon_topic(h.STORE, "gw-2", prefix=PREFIX)
    pool = max(1, min(2000, len(shoppers) * 4 // batch))
    bodies: list[bytes] = []
    for n in range(pool):
        base = n * batch
        items = [
            {
                "ts": "@TS@",
                "beacon": beacons[(base + i) % len(beacons)],
                "rssi": -60 - (base + i) % 20,
                "shopper": shoppers[(base + i) % len(shoppers)],
            }
            for i in range(batch)
        ]
        bodies.append(orjson.dumps(items))
    bad = orjson.dumps([{"ts": "@TS@", "beacon": "b-nowhere", "rssi": -60, "shopper": "x"}])
    cache: list[float | bytes] = [0.0, b"0"]

    def make(n: int, now: float) -> tuple[str, bytes]:
        if cache[0] != now:
            cache[0], cache[1] = now, repr(now).encode()
        body = bad if bad_every and n % bad_every == bad_every - 1 else bodies[n % pool]
        ts = cache[1]
        assert isinstance(ts, bytes)
        return topic, body.replace(b'"@TS@"', ts)

    return make


# --------------------------------------------------------------------------- overload


def overload(ctx: Context) -> Result:
    """3x what the runner sustains, from a raw publisher; every message accounted for.

    The runner's rate is measured first (publishing as fast as the broker takes
    it), then the publisher offers three times that for the overload period.
    The broker holds the backlog (the runner stops reading); sightings older
    than the shed bound when the runner reaches them are shed. Once drained,
    processed + dead-lettered + shed must equal what the broker acknowledged to
    the publisher, exactly; the runner's RSS must stay bounded and come back.
    """
    res = Result("overload")
    seconds = 8.0 if ctx.quick else 60.0
    shed_after = "4s" if ctx.quick else "30s"
    files = h.write_store(ctx.dir("overload"), {"dwell": h.dwell_rule()}, shoppers=500)
    make = _sightings(files.shoppers, batch=50, bad_every=97)
    # The broker holds the whole backlog (up to 2 M messages). Mosquitto rewrites its
    # whole database at every save: saving a backlog of a gigabyte every 5 s (the
    # project's setting) starves the publisher, so this broker saves every minute.
    stack = h.Stack(
        ctx.dir("overload"), files, max_queued=2_000_000, autosave_s=OVERLOAD_AUTOSAVE_S
    )
    with stack as st:
        runner = st.runner("overload", shed_sightings_after_s=shed_after).start()
        with h.Devices(st.address(), PREFIX) as dev, h.Recorder(st.address(), PREFIX) as rec:
            rec.sync(dev, runners=[runner])
            with RawPublisher(st.address(), h.mark("load")) as pub:
                pub.run(make, 200, 2.5)  # every shopper seen once: the engine's state is built
                _wait(lambda: sum(runner.outcomes().values()) >= pub.acked, 30)
                time.sleep(1.5)  # metrics are synced once a second
                before = runner.outcomes()
                baseline = runner.rss_mb()
                offered_before = pub.acked
                with h.sampling_rss(runner) as rss:
                    sustained = _calibrate(pub, make, runner, 2.0 if ctx.quick else 5.0)
                    ctx.say(f"overload: the runner sustains {sustained:.0f} msg/s; offering 3x")
                    report = pub.run(make, 3 * sustained, seconds)
                    pub.wait_acked(30)
                    offered = pub.acked - offered_before

                    def drained() -> bool:
                        got = runner.outcomes()
                        return sum(got.values()) - sum(before.values()) >= offered

                    drain_started = time.monotonic()
                    finished = _wait(drained, 300 if not ctx.quick else 120, every=0.5)
                    drain_s = time.monotonic() - drain_started
                    time.sleep(2.5)  # settled, and one more metrics sync
                peak = max(mb for _, mb in rss)  # overload and drain
                drained_mb = runner.rss_mb()
                # The runner gives memory back once its inbox stayed empty a while.
                time.sleep(DEFAULT_QUIET_S + 3.0)
                after_mb = runner.rss_mb()
            got = runner.outcomes()
    res.offered = offered
    res.processed = got["processed"] - before["processed"]
    res.deadlettered = got["deadlettered"] - before["deadlettered"]
    res.shed = got["shed"] - before["shed"]
    accounted = res.processed + res.deadlettered + res.shed
    res.lost = max(0, offered - accounted)
    res.redelivered = max(0, accounted - offered)
    res.notes = {
        "sustained_msg_per_s": round(sustained),
        "offered_msg_per_s": round(report.rate),
        "overload_ratio": round(report.rate / sustained, 2) if sustained else None,
        "overload_s": seconds,
        "drain_s": round(drain_s, 1),
        "sightings_per_message": 50,
        "shed_after": shed_after,
        "rss_mb": {
            "baseline": round(baseline, 1),
            "peak": round(peak, 1),
            "drained": round(drained_mb, 1),
            "after": round(after_mb, 1),
        },
    }
    res.check(finished, f"not drained: {accounted} of {offered} accounted for")
    res.check(accounted == offered, f"processed+deadlettered+shed = {accounted} != {offered}")
    res.check(report.rate >= 2.0 * sustained, f"offered only {report.rate / sustained:.1f}x")
    res.check(peak - baseline <= RSS_GROWTH_MB, f"RSS grew {peak - baseline:.0f} MB")
    res.check(after_mb - baseline <= RSS_AFTER_MB, f"RSS stayed {after_mb - baseline:.0f} MB up")
    return res


def _calibrate(pub: RawPublisher, make: Make, runner: h.Runner, seconds: float) -> float:
    """Messages a second the runner handles with a backlog waiting (published flat out)."""
    start = sum(runner.outcomes().values())
    t0 = time.monotonic()
    pub.run(make, 0, seconds)
    time.sleep(1.0)  # let the once-a-second metrics catch up with the run
    done = sum(runner.outcomes().values()) - start
    return max(1.0, done / (time.monotonic() - t0 - 0.5))


# --------------------------------------------------------------------------- Redis


def redis_pause(ctx: Context) -> Result:
    """Redis SIGSTOPped: step-1 alerts on time (p99 < 100 ms), offers fail closed, recovery."""
    return _redis_fault(ctx, "redis-pause", pause=True)


def redis_stop(ctx: Context) -> Result:
    """Redis shut down, then started again on its port: the same promises as paused."""
    return _redis_fault(ctx, "redis-stop", pause=False)


def _redis_fault(ctx: Context, name: str, *, pause: bool) -> Result:
    res = Result(name)
    fault_s = 5.0 if ctx.quick else 30.0
    rules = {"bell": h.bell_rule(), "dwell": h.dwell_rule(at_least="2s")}
    files = h.write_store(ctx.dir(name), rules, shoppers=50)
    with h.Stack(ctx.dir(name), files) as st:
        runner = st.runner(name).start()
        with (
            h.Devices(st.address(), PREFIX) as dev,
            h.Recorder(st.address(), PREFIX) as rec,
            h.Lingering(dev, [(b, beacon, True) for b, beacon in h.STAFF.items()]),
        ):
            _staffed(rec, dev, runner)
            presser = _Presser(dev, rec, files.bells)
            presser.run(10, every_s=0.1)  # Redis up: the reference
            res.notes["redis_up"] = _latency(presser.take())
            before_offers = len(rec.select(h.is_offer))
            ctx.say(f"{name}: Redis {'paused' if pause else 'stopped'} for {fault_s:.0f} s")
            (st.redis.pause if pause else st.redis.stop)()
            started = time.monotonic()
            with h.Lingering(dev, [(files.shoppers[0], DAIRY, False)]):
                presses = int(fault_s / 0.1)
                presser.run(presses, every_s=0.1)
                time.sleep(max(0.0, fault_s - (time.monotonic() - started)))
            during = presser.take()
            res.latency_ms = _latency(during)
            refused = runner.metrics()
            (st.redis.resume if pause else st.redis.start)()
            offers_during = len(rec.select(h.is_offer)) - before_offers
            # Recovery, no restart: a new shopper's dwell earns a coupon again.
            recovered = _coupon_after_recovery(rec, dev, files.shoppers[1])
            backlog_clear = _wait(
                lambda: h.total(runner.metrics(), "floorwalker_journal_backlog") == 0, 10
            )
            after = runner.metrics()
            alive = runner.alive
    res.offered = presser.pressed
    res.processed = presser.answered
    res.lost = presser.pressed - presser.answered
    res.doubled = presser.doubled
    res.redelivered = presser.redelivered
    res.notes.update(
        {
            "fault_s": fault_s,
            "offers_during_fault": offers_during,
            "offers_refused": h.total(
                refused, "floorwalker_suppressed_total", reason="guard_store_unavailable"
            ),
            "calls_refused_at_once": h.total(refused, "floorwalker_redis_calls_refused_total"),
            "circuit_trips": h.total(after, "floorwalker_redis_circuit_trips_total"),
            "coupon_after_recovery": recovered,
            "journal_caught_up": backlog_clear,
        }
    )
    p99 = res.latency_ms.get("p99", float("inf"))
    res.check(res.lost == 0, f"{res.lost} press(es) never paged anyone")
    res.check(res.doubled == 0, f"{res.doubled} press(es) paged twice")
    res.check(p99 < ALERT_P99_MS, f"alert p99 {p99:.1f} ms with Redis away")
    res.check(offers_during == 0, "an offer went out with Redis away (must fail closed)")
    res.check(res.notes["offers_refused"] >= 1, "no offer was refused with Redis away")
    res.check(recovered, "no coupon after Redis came back")
    res.check(backlog_clear, "the alert journal did not catch up")
    res.check(alive, "the runner died")
    return res


def _coupon_after_recovery(rec: h.Recorder, dev: h.Devices, shopper: str) -> bool:
    topic = offer_topic(h.STORE, shopper, prefix=PREFIX)
    time.sleep(1.5)  # the circuit's next probe closes it
    with h.Lingering(dev, [(shopper, DAIRY, False)]):
        try:
            rec.wait(lambda m: m.topic == topic, 1, timeout=10.0)
        except ServiceError:
            return False
    return True


class _Presser:
    """Presses bells one after another; each alert is answered ``done`` to free its bell."""

    def __init__(self, dev: h.Devices, rec: h.Recorder, bells: tuple[str, ...]) -> None:
        self.dev, self.rec = dev, rec
        self.free = list(bells)
        self.pressed = self.answered = self.doubled = self.redelivered = 0
        self._latencies: list[float] = []
        self._waiting: dict[str, float] = {}
        """bell -> when it was pressed, until its alert arrives."""
        self.press_ids: dict[str, str] = {}
        """bell -> its latest press id."""
        self._seen: set[str] = set()

    def run(self, presses: int, every_s: float, timeout: float = 10.0) -> None:
        next_at = time.monotonic()
        for _ in range(presses):
            self._collect()
            if not self.free:
                time.sleep(every_s)
                self._collect()
            if self.free:
                bell = self.free.pop(0)
                self.press_ids[bell] = h.mark("press")
                self._waiting[bell] = self.dev.press(bell, self.press_ids[bell])
                self.pressed += 1
            next_at += every_s
            time.sleep(max(0.0, next_at - time.monotonic()))
        _wait(self._settled, timeout, every=0.05)

    def _settled(self) -> bool:
        self._collect()
        return not self._waiting

    def _collect(self) -> None:
        ids: Counter[str] = Counter()
        for m in self.rec.select(h.is_alert):
            ids[h.delivery(m)] += 1
            alert_id = str(m.payload.get("id"))
            if alert_id in self._seen:
                continue
            self._seen.add(alert_id)
            bell = h.bell_of(m)
            pressed = self._waiting.pop(bell, None)
            if pressed is None:
                self.doubled += 1  # a second alert for a press already answered
                continue
            self.answered += 1
            self._latencies.append(m.at - pressed)
            self.dev.answer(m.topic.split("/")[-2], alert_id, "done")
            self.free.append(bell)
        self.redelivered = sum(n - 1 for n in ids.values())

    def unanswered(self) -> list[str]:
        """Press ids still waiting for their alert."""
        return [self.press_ids[bell] for bell in self._waiting]

    def take(self) -> list[float]:
        out, self._latencies = self._latencies, []
        return out


# --------------------------------------------------------------------------- restarts


def broker_restart(ctx: Context) -> Result:
    """Mosquitto ``kill -9`` while an escalation step is due, restarted on its port and data.

    The step falls due while the broker is down; it goes out once when the
    broker is back. A persistent subscriber (a band keeps its session) sees
    every delivery once. Inbound sightings keep coming before and after.
    """
    res = Result("broker-restart")
    escalate_s = 6.0
    rules = {"bell": h.bell_rule(escalate_after=f"{escalate_s:g}s")}
    files = h.write_store(ctx.dir("broker"), rules, shoppers=100)
    load_rate = 100 if ctx.quick else 300
    with h.Stack(ctx.dir("broker"), files) as st:
        runner = st.runner("broker").start()
        with (
            h.Devices(st.address(), PREFIX) as dev,
            h.Recorder(st.address(), PREFIX, clean_session=False) as rec,
        ):
            _staffed(rec, dev, runner)
            time.sleep(st.autosave_s + 1.0)  # the broker saved our sessions
            make = _sightings(files.shoppers, batch=1, bad_every=0)
            time.sleep(1.5)
            base, base_sent = runner.outcomes(), dev.sent
            offered = _offer(st, make, load_rate, 2.0)
            alert_id, pressed = _press_and_page(dev, rec, files.bells[0])
            # The broker saves every autosave_s: a kill sooner could hand step 1 out again
            # from its last save (at least once, which devices dedup), not what is tested.
            # Three save intervals, not one: a save delayed by a loaded machine still
            # lands before the kill (else the subscriber's step 1 comes again).
            time.sleep(3 * st.autosave_s + 0.5)
            ctx.say("broker-restart: kill -9 of the broker, step 2 due while it is down")
            st.broker.kill()
            time.sleep(max(0.0, pressed + escalate_s + 1.5 - time.time()))
            st.broker.start()
            step2 = _wait_step(rec, alert_id, 2, timeout=20.0)
            offered += _offer(st, make, load_rate, 2.0)
            rec.sync(dev)
            offered += dev.sent - base_sent

            def delta() -> dict[str, int]:
                now = runner.outcomes()
                return {k: now[k] - base[k] for k in now}

            _wait(lambda: sum(delta().values()) >= offered, 10)
            time.sleep(1.5)
            got = delta()
            alive = runner.alive
    accounted = sum(got.values())
    res.offered = offered
    res.processed, res.deadlettered, res.shed = got["processed"], got["deadlettered"], got["shed"]
    inbound_lost = max(0, offered - accounted)
    pages = [m for m in rec.select(h.is_alert) if m.payload.get("id") == alert_id]
    steps = Counter(int(m.payload.get("step", 0)) for m in pages)
    res.lost = (0 if steps[1] else 1) + (0 if steps[2] else 1) + inbound_lost
    res.redelivered = _repeats(rec)
    res.doubled = max(0, len({h.delivery(m) for m in pages}) - 2)
    if step2 is not None:
        res.latency_ms = {"step2_after_due": (step2.at - (pressed + escalate_s)) * 1000.0}
    res.notes = {
        "steps": dict(steps),
        "inbound_lost": inbound_lost,
        # The broker restores its sessions from its last save: a message it had
        # sent us and we acknowledged after that save comes again (at least once).
        "inbound_redelivered": max(0, accounted - offered),
    }
    res.check(steps[1] == 1 and steps[2] == 1, f"step deliveries {dict(steps)}, want one each")
    res.check(res.redelivered == 0, f"{res.redelivered} repeated deliveries at the subscriber")
    res.check(alive, "the runner died")
    res.check(inbound_lost == 0, f"{inbound_lost} inbound messages unaccounted for")
    return res


def _staffed(rec: h.Recorder, dev: h.Devices, runner: h.Runner) -> None:
    """Wait for the runner to serve, place the staff, wait until it has placed them."""
    rec.sync(dev, runners=[runner])
    dev.place_staff()
    rec.sync(dev)


def _offer(st: h.Stack, make: Make, rate: float, seconds: float) -> int:
    """Publish with a raw publisher of its own; how many the broker acknowledged."""
    with RawPublisher(st.address(), h.mark("load")) as pub:
        pub.run(make, rate, seconds)
        pub.wait_acked(10)
        return pub.acked


def engine_restart(ctx: Context) -> Result:
    """The runner ``kill -9``'d with an action the broker never confirmed: sent after restart.

    Broker down, an escalation step falls due: the runner decides it, writes it
    to its outbox, cannot publish it. Then the runner is killed, the broker
    comes back, the runner starts again: the step goes out once, from the outbox.
    """
    res = Result("engine-restart")
    escalate_s = 6.0
    rules = {"bell": h.bell_rule(escalate_after=f"{escalate_s:g}s")}
    files = h.write_store(ctx.dir("engine"), rules, shoppers=20)
    with h.Stack(ctx.dir("engine"), files) as st:
        runner = st.runner("engine").start()
        with (
            h.Devices(st.address(), PREFIX) as dev,
            h.Recorder(st.address(), PREFIX, clean_session=False) as rec,
        ):
            _staffed(rec, dev, runner)
            time.sleep(st.autosave_s + 1.0)
            alert_id, pressed = _press_and_page(dev, rec, files.bells[0])
            time.sleep(3 * st.autosave_s + 0.5)  # step 1 confirmed and saved (see broker_restart)
            st.broker.kill()
            time.sleep(max(0.0, pressed + escalate_s + 1.5 - time.time()))  # step 2: outbox
            ctx.say("engine-restart: kill -9 of the runner holding an unpublished step")
            runner.kill9()
            st.broker.start()
            runner.start()
            step2 = _wait_step(rec, alert_id, 2, timeout=30.0)
            rec.sync(dev, runners=[runner])
            time.sleep(1.5)
            resent = h.total(runner.metrics(), "floorwalker_outbox_resent_total")
    pages = [m for m in rec.select(h.is_alert) if m.payload.get("id") == alert_id]
    steps = Counter(int(m.payload.get("step", 0)) for m in pages)
    res.offered = 2
    res.processed = len({h.delivery(m) for m in pages})
    res.lost = (0 if steps[1] else 1) + (0 if steps[2] else 1)
    res.doubled = max(0, res.processed - 2)
    res.redelivered = _repeats(rec)
    res.notes = {"steps": dict(steps), "outbox_resent": resent, "step2_arrived": step2 is not None}
    res.check(steps[1] == 1 and steps[2] == 1, f"step deliveries {dict(steps)}, want one each")
    res.check(resent >= 1, "the step did not come from the outbox")
    res.check(res.redelivered == 0, f"{res.redelivered} repeated deliveries at the subscriber")
    return res


def _press_and_page(dev: h.Devices, rec: h.Recorder, bell: str) -> tuple[str, float]:
    pressed = dev.press(bell, h.mark("press"))
    page = rec.wait(lambda m: h.is_alert(m) and h.bell_of(m) == bell, 1, timeout=10.0)[0]
    return str(page.payload["id"]), pressed


def _wait_step(rec: h.Recorder, alert_id: str, step: int, timeout: float) -> h.Received | None:
    try:
        return rec.wait(
            lambda m: (
                h.is_alert(m) and m.payload.get("id") == alert_id and m.payload.get("step") == step
            ),
            1,
            timeout,
        )[0]
    except ServiceError:
        return None


def _repeats(rec: h.Recorder) -> int:
    """Deliveries of an action id the subscriber had already (QoS 1 repeats)."""
    ids = Counter(h.delivery(m) for m in rec.select(lambda m: h.is_alert(m) or h.is_offer(m)))
    return sum(n - 1 for n in ids.values())


def kill9(ctx: Context) -> Result:
    """The runner ``kill -9``'d again and again under load; witnesses count what survived.

    Load: sightings of a crowd (away from the dairy aisle) at a steady rate.
    Witnesses: bell presses (each must page once), shoppers dwelling in dairy
    (each must get one coupon, one code) and messages from an unknown device
    (each must be dead-lettered). Each kill lands at a random moment of a
    serving period, right after witnesses were sent.
    """
    res = Result("kill9")
    kills = 3 if ctx.quick else 20
    rules = {"bell": h.bell_rule(), "dwell": h.dwell_rule(at_least="2s")}
    files = h.write_store(ctx.dir("kill9"), rules, shoppers=400)
    dwellers = list(files.shoppers[: 10 if ctx.quick else 60])
    load = _sightings(files.shoppers[100:], 1, 0, beacons=AISLES[1:])
    with h.Stack(ctx.dir("kill9"), files) as st:
        runner = st.runner("kill9").start()
        with (
            h.Devices(st.address(), PREFIX) as dev,
            h.Recorder(st.address(), PREFIX) as rec,
            h.Lingering(dev, [(b, beacon, True) for b, beacon in h.STAFF.items()]),
        ):
            _staffed(rec, dev, runner)
            wit = _Witnesses(dev, rec, files.bells, dwellers)
            with (
                RawPublisher(st.address(), h.mark("load")) as pub,
                wit.dwelling,
                _background(lambda stop: pub.run(load, 300, 10_000.0, stop=stop)),
            ):
                for k in range(kills):
                    wit.send_for(1.5 if ctx.quick else 2.0)
                    ctx.say(f"kill9: kill -9 #{k + 1} of {kills}")
                    time.sleep(random.uniform(0.0, 0.3))
                    runner.kill9()
                    runner.start()
                    rec.sync(dev, runners=[runner], timeout=60.0)
                wit.send_for(2.0)
                wit.presser.run(0, every_s=0.1, timeout=15.0)
                _wait(wit.all_coupons, 20.0)  # the last dwellers settle, then dwell
                time.sleep(2.0)  # anything doubled would be here by now
                offered_load = pub.sent
                alive = runner.alive
    wit.count(res)
    res.notes.update({"kills": kills, "starts": runner.starts, "load_messages": offered_load})
    res.check(alive, "the runner is not running at the end")
    return res


class _Witnesses:
    """Messages whose outcome is visible: presses, dwellers, unknown-device markers."""

    def __init__(
        self, dev: h.Devices, rec: h.Recorder, bells: tuple[str, ...], dwellers: list[str]
    ) -> None:
        self.dev, self.rec = dev, rec
        self.presser = _Presser(dev, rec, bells)
        self.dwellers = dwellers
        self.dwelling = h.Lingering(dev, [])
        self.markers: list[str] = []

    def send_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if len(self.dwelling) < len(self.dwellers):
                self.dwelling.add(self.dwellers[len(self.dwelling)], DAIRY)
            self.markers.append(_marker(self.dev))
            self.presser.run(1, every_s=0.25, timeout=0.0)

    def coupons(self) -> dict[str, set[str]]:
        """Dweller -> the coupon codes it received."""
        codes: dict[str, set[str]] = {s: set() for s in self.dwellers}
        for m in self.rec.select(h.is_offer):
            shopper = m.topic.split("/")[-2]
            if shopper in codes:
                codes[shopper].add(str(m.payload.get("code")))
        return codes

    def all_coupons(self) -> bool:
        return all(self.coupons().values())

    def count(self, res: Result) -> None:
        rec, presser = self.rec, self.presser
        dead = " ".join(str(m.payload.get("raw", "")) for m in rec.select(h.is_deadletter))
        markers_lost = sum(1 for marker in self.markers if marker not in dead)
        coupons = self.coupons()
        no_coupon = [s for s, codes in coupons.items() if not codes]
        two_codes = [s for s, codes in coupons.items() if len(codes) > 1]
        res.offered = presser.pressed + len(self.markers) + len(self.dwellers)
        res.processed = presser.answered + len(self.dwellers) - len(no_coupon)
        res.deadlettered = len(self.markers) - markers_lost
        res.lost = (presser.pressed - presser.answered) + markers_lost + len(no_coupon)
        res.doubled = presser.doubled + len(two_codes)
        res.redelivered = _repeats(rec)
        res.latency_ms = _latency(presser.take())
        unanswered = {
            press: [
                str(m.payload.get("reason"))
                for m in rec.select(h.is_deadletter)
                if press in str(m.payload.get("raw", ""))
            ]
            for press in presser.unanswered()
        }
        res.notes = {
            "presses": presser.pressed,
            "markers": len(self.markers),
            "dwellers": len(self.dwellers),
            "unanswered_presses": unanswered,
            "no_coupon": no_coupon,
            "two_codes": two_codes,
        }
        res.check(
            res.lost == 0,
            f"lost: presses {presser.pressed - presser.answered}, markers {markers_lost},"
            f" coupons {len(no_coupon)}",
        )
        res.check(res.doubled == 0, f"doubled: alerts {presser.doubled}, coupons {len(two_codes)}")


def _marker(dev: h.Devices) -> str:
    marker = h.mark("marker")
    dev.publish(
        bell_topic(h.STORE, "no-such-bell", prefix=PREFIX), {"id": marker, "ts": time.time()}
    )
    return marker


@contextlib.contextmanager
def _background(work: Callable[[threading.Event], object]) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


# --------------------------------------------------------------------------- budget


def budget(ctx: Context) -> Result:
    """Two runners, one Redis, one budget: exactly the budget is spent, never a code twice."""
    res = Result("budget")
    coupons = 5 if ctx.quick else 20
    shoppers = 3 * coupons
    limits = f"  budget: {{coupons: {coupons}}}\n"
    files = h.write_store(
        ctx.dir("budget"), {"dwell": h.dwell_rule(at_least="2s", limits=limits)}, shoppers=shoppers
    )
    with h.Stack(ctx.dir("budget"), files) as st:
        runners = [st.runner(f"budget-{k}").start() for k in "AB"]
        with h.Devices(st.address(), PREFIX) as dev, h.Recorder(st.address(), PREFIX) as rec:

            def serving() -> bool:  # each runner has answered a sync ping (dead-lettered it)
                rec.sync(dev, runners=runners)
                return all(r.outcomes()["deadlettered"] > 0 for r in runners)

            _wait(serving, 30)
            with h.Lingering(dev, [(s, DAIRY, False) for s in files.shoppers]):
                _wait(lambda: len(rec.select(h.is_offer)) >= coupons, 45)
                time.sleep(3.0)  # anything over the budget would be here by now
            offers = rec.select(h.is_offer)
            spent = _budget_spent(st.redis.url, PREFIX)
    codes = Counter(str(m.payload.get("code")) for m in offers)
    res.offered = shoppers
    res.processed = len(offers)
    res.doubled = sum(n - 1 for n in codes.values())
    res.notes = {"budget": coupons, "sent": len(offers), "issued_in_redis": spent, "runners": 2}
    res.check(len(offers) == coupons, f"{len(offers)} coupons for a budget of {coupons}")
    res.check(spent == coupons, f"Redis says {spent} issued")
    res.check(res.doubled == 0, "a code sent twice")
    return res


def _budget_spent(url: str, prefix: str) -> int:
    import redis  # noqa: PLC0415

    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        # Budgets reserve a coupon when it is issued (spent at redemption): count issued.
        value = client.hget(f"{prefix}:guard:bud:budget:fault-dwell", "issued")
    finally:
        client.close()
    return int(str(value)) if value is not None else 0


# --------------------------------------------------------------------------- security


def forged(ctx: Context) -> Result:
    """Forged and eavesdropping clients against the generated config (docs/security.md).

    Refused: an anonymous client and a wrong password. Dropped by the ACL (each
    checked against a barrier the same client sends after it, which arrives): a
    gateway's forged offer, a band's ack as another band, a shopper's forged
    bell press. Unseen: another band's alert by a band subscribed to ``#``,
    another shopper's offer by a shopper subscribed to ``#``.
    """
    res = Result("forged")
    files = h.write_store(ctx.dir("forged"), {"bell": h.bell_rule()}, shoppers=2)
    with h.Stack(ctx.dir("forged"), files) as st:
        checks = _Security(st, files)
        with contextlib.ExitStack() as stack:
            checks.run(stack)
    res.offered = checks.tried
    res.lost = 0
    res.notes = {"tried": checks.tried, "refused": checks.refused, "leaks": checks.leaks}
    for leak in checks.leaks:
        res.fail(leak)
    return res


class _Security:
    def __init__(self, st: h.Stack, files: h.StoreFiles) -> None:
        self.st, self.files = st, files
        self.tried = self.refused = 0
        self.leaks: list[str] = []

    def _expect(self, refused: bool, what: str) -> None:
        self.tried += 1
        if refused:
            self.refused += 1
        else:
            self.leaks.append(what)

    def _client(self, stack: contextlib.ExitStack, who: str, *subs: str) -> _Listener:
        listener = _Listener(self.st.address(who), h.mark(who), subs)
        return stack.enter_context(listener)

    def run(self, stack: contextlib.ExitStack) -> None:
        st = self.st
        anonymous = BrokerAddress(st.broker.host, st.broker.port)
        self._expect(not _connects(anonymous), "an anonymous client got in")
        wrong = st.address(ENGINE_USER).with_identity(ENGINE_USER, "not-the-password")
        self._expect(not _connects(wrong), "a wrong password got in")
        shopper, other = self.files.shoppers
        spy = self._client(stack, TESTER, f"{PREFIX}/#")
        engine = self._client(stack, ENGINE_USER)
        gateway = self._client(stack, "gw-1")
        band = self._client(stack, "band-02", "#", f"{PREFIX}/#")
        app = self._client(stack, shopper, "#")
        mine = offer_topic(h.STORE, shopper, prefix=PREFIX)
        theirs = offer_topic(h.STORE, other, prefix=PREFIX)
        # Forged publishes: each followed by a permitted barrier from the same client.
        gateway.send(mine, {"id": "forged-offer", "code": "FAKE"})
        gateway.send(beacon_topic(h.STORE, "gw-1", prefix=PREFIX), {"id": "barrier-gw"})
        band.send(ack_topic(h.STORE, "band-03", prefix=PREFIX), {"id": "forged-ack"})
        band.send(ack_topic(h.STORE, "band-02", prefix=PREFIX), {"id": "barrier-band"})
        app.send(bell_topic(h.STORE, "fb-00", prefix=PREFIX), {"id": "forged-press"})
        spy.wait_for(b"barrier-gw")
        spy.wait_for(b"barrier-band")
        for forged_id in (b"forged-offer", b"forged-ack"):
            self._expect(
                not spy.saw(forged_id), f"{forged_id.decode()} reached the broker's readers"
            )
        # Eavesdropping: the engine sends to others; then to the listener itself.
        engine.send(theirs, {"id": "other-offer"})
        engine.send(alert_topic(h.STORE, "band-03", prefix=PREFIX), {"id": "other-alert"})
        engine.send(mine, {"id": "own-offer"})
        engine.send(alert_topic(h.STORE, "band-02", prefix=PREFIX), {"id": "own-alert"})
        app.wait_for(b"own-offer")
        band.wait_for(b"own-alert")
        self._expect(not app.saw(b"other-offer"), "a shopper read another shopper's offer")
        self._expect(not app.saw(b"other-alert"), "a shopper read a staff alert")
        self._expect(not band.saw(b"other-alert"), "a band read another band's alert")
        self._expect(not band.saw(b"own-offer"), "a band read a shopper's offer")
        self._expect(not spy.saw(b"forged-press"), "a shopper app pressed a bell")


TESTER: Final = "test-harness"


class _Listener:
    def __init__(self, broker: BrokerAddress, client_id: str, subs: tuple[str, ...]) -> None:
        self.got: list[bytes] = []
        self._cond = threading.Condition()
        self.client = MqttClient(client_id, broker, subscriptions=subs, on_message=self._on)

    def __enter__(self) -> _Listener:
        self.client.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def _on(self, _topic: str, payload: bytes) -> None:
        with self._cond:
            self.got.append(payload)
            self._cond.notify_all()

    def send(self, topic: str, body: dict[str, Any]) -> None:
        self.client.publish(topic, orjson.dumps(body))

    def saw(self, needle: bytes) -> bool:
        with self._cond:
            return any(needle in p for p in self.got)

    def wait_for(self, needle: bytes, timeout: float = 5.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: any(needle in p for p in self.got), timeout):
                raise ServiceError(f"{needle.decode()} never arrived")


def _connects(broker: BrokerAddress) -> bool:
    try:
        MqttClient(h.mark("intruder"), broker).connect(timeout_s=5.0).close()
    except ServiceError:
        return False
    return True


# --------------------------------------------------------------------------- registry


SCENARIOS: Final[dict[str, Callable[[Context], Result]]] = {
    "kill9": kill9,
    "broker-restart": broker_restart,
    "engine-restart": engine_restart,
    "redis-pause": redis_pause,
    "redis-stop": redis_stop,
    "overload": overload,
    "budget": budget,
    "forged": forged,
}
