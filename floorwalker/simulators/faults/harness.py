"""What every fault scenario stands on: a store, a secured broker, Redis, runner processes.

* :func:`write_store` - the demo store with :data:`BELLS` extra bells (so many
  alerts can be open at once), consenting shopper profiles and the scenario's
  rules, in a work directory.
* :class:`Stack` - Mosquitto with the config ``floorwalker broker-config``
  generates for that store (authentication and ACLs on, persistence on) and a
  Redis, both on free loopback ports, the profiles imported; runner processes
  (``floorwalker run``) on top, each with its metrics port and durable outbox.
* :class:`Runner` - one ``floorwalker run`` child: start, ``kill -9``, stop,
  its metrics (parsed) and its RSS.
* :class:`Recorder` - the test harness's identity reading every action and
  dead letter under the prefix, with arrival times; :meth:`Recorder.sync` is an
  in-order barrier (a message to a store no registry has comes back as a dead
  letter only after the runner handled everything published before it).
* :class:`Devices` - the harness publishing as the store's devices.

Everything binds or targets loopback only.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

import orjson
import yaml

from floorwalker import services
from floorwalker.devices.broker_config import TESTER_USER, BrokerConfig, write_broker_config
from floorwalker.devices.registry import load_registry
from floorwalker.devices.topics import (
    ack_topic,
    action_filters,
    beacon_topic,
    bell_topic,
    deadletter_filter,
)
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.mqtt import MqttClient
from floorwalker.errors import ServiceError
from floorwalker.simulators.traffic import DEMO_REGISTRY

STORE: Final = "s001"
BELLS: Final = 64
"""Extra bells ``fb-00`` ... (one alert at a time each: many presses need many bells)."""
SYNC_STORE: Final = "zz-sync"
PERMISSIVE_POLICY: Final = "offers_per_shopper: []\nfatigue: off\nquiet_hours: []\n"
STAFF: Final = {"band-02": "b-door-1", "band-03": "b-dairy-1", "band-04": "b-baby-1"}
"""Bands placed by :meth:`Devices.place_staff` (the demo store's associates)."""

_marks = itertools.count(1)


def mark(what: str) -> str:
    """An id unique in this process."""
    return f"{what}-{os.getpid()}-{next(_marks)}"


# --------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class StoreFiles:
    registry: Path
    rules: Path
    profiles: Path
    shoppers: tuple[str, ...]
    bells: tuple[str, ...]


def bell_rule(rule_id: str = "fault-bell", escalate_after: str | None = None) -> str:
    """A bell press -> an alert to the nearest band; optionally one escalation step."""
    text = (
        f"id: {rule_id}\nwhen:\n  bell: {{}}\n"
        "alert:\n  to: nearest\n  priority: high\n  message: '{bell}: help needed in {zone}.'\n"
    )
    if escalate_after is not None:
        text += f"  escalate:\n    - {{after: {escalate_after}, to: next}}\n"
    return text


def dwell_rule(rule_id: str = "fault-dwell", at_least: str = "2s", limits: str = "") -> str:
    """A dwell in the dairy aisle -> one coupon per shopper (per visit), no other caps."""
    return (
        f"id: {rule_id}\npriority: 50\n"
        f"when:\n  dwell: {{zone_tag: dairy, at_least: {at_least}}}\n"
        "offer:\n  id: yogurt-bogo\n  message: Buy one yogurt, get one free.\n"
        "  expires: 2h\n  cost: 1.20\n"
        "limits:\n  per_shopper:\n    - {count: 1, per: visit}\n" + limits
    )


def write_store(workdir: Path, rules: Mapping[str, str], *, shoppers: int = 200) -> StoreFiles:
    """The demo store plus :data:`BELLS` bells, ``shoppers`` consenting profiles, ``rules``."""
    workdir.mkdir(parents=True, exist_ok=True)
    store = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    zones = list(store["zones"])
    bells = tuple(f"fb-{k:02d}" for k in range(BELLS))
    for k, bell in enumerate(bells):
        store["bells"][bell] = {"zone": zones[k % len(zones)]}
    registry = workdir / "store.yaml"
    registry.write_text(yaml.safe_dump(store, sort_keys=False), encoding="utf-8")
    now = time.time()
    tokens = tuple(f"fs-{k:05d}" for k in range(shoppers))
    profiles = workdir / "profiles.jsonl"
    profiles.write_bytes(
        b"".join(
            orjson.dumps(
                {
                    "shopper": t,
                    "tier": "gold",
                    "segment": "loyal",
                    "consent": {"marketing": True},
                    "first_visit": now - 400 * 86400,
                    "last_visit": now - 3 * 86400,
                    "lifetime_value": 900.0,
                }
            )
            + b"\n"
            for t in tokens
        )
    )
    rules_dir = workdir / "rules"
    rules_dir.mkdir(exist_ok=True)
    for name, text in rules.items():
        (rules_dir / f"{name}.yaml").write_text(text, encoding="utf-8")
    (rules_dir / "policy.yaml").write_text(PERMISSIVE_POLICY, encoding="utf-8")
    return StoreFiles(registry, rules_dir, profiles, tokens, bells)


# --------------------------------------------------------------------------- metrics


def scrape(port: int) -> dict[str, float]:
    """``name{label="v",...}`` -> value of a runner's /metrics (loopback)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
        text = resp.read().decode("utf-8", "replace")
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def total(metrics: Mapping[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(
        v
        for k, v in metrics.items()
        if (k == name or k.startswith(name + "{")) and all(w in k for w in want)
    )


# --------------------------------------------------------------------------- processes


class Runner:
    """One ``floorwalker run`` child process, its output in ``log`` (see the module docstring)."""

    def __init__(
        self, argv: list[str], env: Mapping[str, str], log: Path, metrics_port: int | None = None
    ) -> None:
        self.argv = argv
        self.env = dict(env)
        self.log = log
        self.metrics_port = metrics_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Self:
        assert not self.alive, "already running"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        self.starts += 1
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def metrics(self) -> dict[str, float]:
        assert self.metrics_port is not None, "started without --metrics-port"
        return scrape(self.metrics_port)

    def outcomes(self) -> dict[str, int]:
        m = self.metrics()
        return {
            o: int(total(m, "floorwalker_messages_in_total", outcome=o))
            for o in ("processed", "deadlettered", "shed")
        }

    def rss_mb(self) -> float:
        import psutil  # noqa: PLC0415  (the bench extra; only the fault suite measures RSS)

        return psutil.Process(self.pid).memory_info().rss / 2**20

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Stack:
    """A secured broker and a Redis for one scenario, and the runners it starts."""

    def __init__(
        self,
        workdir: Path,
        files: StoreFiles,
        *,
        prefix: str = "fw",
        autosave_s: int = 1,
        max_queued: int = 100_000,
    ) -> None:
        self.workdir = workdir
        self.files = files
        self.prefix = prefix
        self.autosave_s = autosave_s
        self.max_queued = max_queued
        self._stack = contextlib.ExitStack()
        self.runners: list[Runner] = []
        self.broker: services.RunningService
        self.redis: services.RunningService
        self.config: BrokerConfig

    def __enter__(self) -> Stack:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _open(self) -> None:
        from floorwalker.engine.stores.redis_profiles import import_profiles  # noqa: PLC0415

        self.config = write_broker_config(
            [load_registry(self.files.registry)],
            self.workdir / "broker",
            prefix=self.prefix,
            shoppers=self.files.shoppers,
            tester=True,
            simulator=True,
        )
        settings = services.MosquittoSettings(
            auth=self.config.auth,
            autosave_interval_s=self.autosave_s,
            max_queued_messages=self.max_queued,
        )
        self.broker = self._stack.enter_context(services.mosquitto(settings, self.workdir))
        # Durable as a store's Redis is, a restart keeps profiles and guards: an RDB
        # snapshot at every orderly shutdown (an append-only file's fsyncs stall
        # Redis for tens of milliseconds on a busy disk, which is not the fault tested).
        redis = services.RedisSettings(save="3600 1")
        self.redis = self._stack.enter_context(services.redis(redis, self.workdir))
        import_profiles(self.redis.url, self.files.profiles, prefix=f"{self.prefix}:")
        self._stack.callback(self._stop_runners)

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _stop_runners(self) -> None:
        for runner in self.runners:
            runner.stop()

    def address(self, who: str = TESTER_USER) -> BrokerAddress:
        ident = self.config.credentials.identity(who)
        return BrokerAddress(self.broker.host, self.broker.port).with_identity(
            ident.username, ident.password
        )

    def runner(self, client_id: str, **settings: str) -> Runner:
        """A ``floorwalker run`` (not started) as the engine; ``settings``: FLOORWALKER_* values."""
        password = self.workdir / "engine.password"
        password.write_text(self.config.credentials.engine.password + "\n")
        password.chmod(0o600)
        port = services.free_port()
        argv = [
            sys.executable,
            "-c",
            "import sys; from floorwalker.cli import main; sys.exit(main())",
            "run",
            "--mqtt",
            self.broker.url,
            "--mqtt-username",
            self.config.credentials.engine.username,
            "--mqtt-password-file",
            str(password),
            "--redis",
            self.redis.url,
            "--registry",
            str(self.files.registry),
            "--rules",
            str(self.files.rules),
            "--client-id",
            client_id,
            "--prefix",
            self.prefix,
            "--metrics-port",
            str(port),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOORWALKER_")}
        env["FLOORWALKER_REDIS_PREFIX"] = f"{self.prefix}:"
        env["FLOORWALKER_OUTBOX_DIR"] = str(self.workdir / "outbox")
        env.update({f"FLOORWALKER_{k.upper()}": v for k, v in settings.items()})
        runner = Runner(argv, env, self.workdir / f"runner-{client_id}.log", port)
        self.runners.append(runner)
        return runner


# --------------------------------------------------------------------------- MQTT


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: dict[str, Any]
    at: float


@dataclass
class Recorder:
    """Every action and dead letter under the prefix, as the test harness receives them."""

    broker: BrokerAddress
    prefix: str
    client_id: str = field(default_factory=lambda: mark("recorder"))
    clean_session: bool = True
    got: list[Received] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _client: MqttClient | None = None

    def __enter__(self) -> Recorder:
        filters = (*action_filters(prefix=self.prefix), deadletter_filter(prefix=self.prefix))
        self._client = MqttClient(
            self.client_id,
            self.broker,
            subscriptions=filters,
            on_message=self._on,
            clean_session=self.clean_session,
        ).connect()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()

    def _on(self, topic: str, payload: bytes) -> None:
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            body = {"raw": payload.decode("utf-8", "replace")}
        with self._cond:
            self.got.append(Received(topic, body if isinstance(body, dict) else {}, time.time()))
            self._cond.notify_all()

    def select(self, match: Callable[[Received], bool]) -> list[Received]:
        with self._cond:
            return [m for m in self.got if match(m)]

    def wait(
        self, match: Callable[[Received], bool], n: int = 1, timeout: float = 10.0
    ) -> list[Received]:
        """At least ``n`` matching messages within ``timeout``; raises ServiceError if not."""
        with self._cond:
            if self._cond.wait_for(lambda: len([m for m in self.got if match(m)]) >= n, timeout):
                return [m for m in self.got if match(m)]
        raise ServiceError(f"{self.client_id}: fewer than {n} expected messages in {timeout} s")

    def sync(self, devices: Devices, timeout: float = 30.0, runners: Iterable[Runner] = ()) -> None:
        """Wait until the runner handled everything published before (see the module doc).

        Fails at once if one of ``runners`` exited.
        """
        watched = list(runners)
        marker = mark("sync")
        dead = f"{self.prefix}/{SYNC_STORE}/deadletter"

        def match(m: Received) -> bool:
            return m.topic == dead and marker in str(m.payload.get("raw", ""))

        deadline = time.monotonic() + timeout
        while True:
            devices.publish(bell_topic(SYNC_STORE, "ping", prefix=self.prefix), {"id": marker})
            with self._cond:
                if self._cond.wait_for(lambda: bool([m for m in self.got if match(m)]), 0.5):
                    return
            for runner in watched:
                if not runner.alive:
                    raise ServiceError(f"the runner exited:\n{runner.log_tail()}")
            if time.monotonic() > deadline:
                raise ServiceError(f"no answer to a sync within {timeout} s")


def is_alert(m: Received) -> bool:
    return m.topic.endswith("/alert")


def is_offer(m: Received) -> bool:
    return m.topic.endswith("/offer")


def is_deadletter(m: Received) -> bool:
    return m.topic.endswith("/deadletter")


def bell_of(m: Received) -> str:
    """The bell an alert of :func:`bell_rule` is about (its message starts with it)."""
    return str(m.payload.get("message", "")).split(":", 1)[0]


def delivery(m: Received) -> str:
    """The id a device deduplicates by: an offer's id, an alert's id/step/band."""
    if is_alert(m):
        return f"{m.payload.get('id')}/{m.payload.get('step')}/{m.topic.split('/')[-2]}"
    return str(m.payload.get("id"))


class Devices:
    """The harness's identity publishing as the store's devices (QoS 1)."""

    def __init__(self, broker: BrokerAddress, prefix: str) -> None:
        self.prefix = prefix
        self.sent = 0
        """Messages published (each one the runner owes an outcome)."""
        self._client = MqttClient(mark("devices"), broker).connect()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Devices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def publish(self, topic: str, body: Mapping[str, Any] | list[Any]) -> None:
        self._client.publish(topic, orjson.dumps(body))
        self.sent += 1

    def sighting(self, subject: str, beacon: str, *, staff: bool = False, rssi: int = -60) -> None:
        body: dict[str, Any] = {"ts": time.time(), "beacon": beacon, "rssi": rssi}
        body["band" if staff else "shopper"] = subject
        self.publish(beacon_topic(STORE, "gw-1", prefix=self.prefix), body)

    def place_staff(self, rounds: int = 3) -> None:
        for _ in range(rounds):
            for band, beacon in STAFF.items():
                self.sighting(band, beacon, staff=True, rssi=-55)

    def press(self, bell: str, press_id: str) -> float:
        at = time.time()
        self.publish(bell_topic(STORE, bell, prefix=self.prefix), {"id": press_id, "ts": at})
        return at

    def answer(self, band: str, alert_id: str, action: str = "done") -> None:
        body = {"id": mark("ack"), "ts": time.time(), "alert": alert_id, "action": action}
        self.publish(ack_topic(STORE, band, prefix=self.prefix), body)


class Lingering:
    """Sightings of ``subjects`` (at their beacons) once a second in a thread, ``ts`` = now."""

    def __init__(self, devices: Devices, subjects: Iterable[tuple[str, str, bool]]) -> None:
        self.devices = devices
        self._subjects = list(subjects)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lingering", daemon=True)

    def add(self, subject: str, beacon: str, *, staff: bool = False) -> None:
        with self._lock:
            self._subjects.append((subject, beacon, staff))

    def __len__(self) -> int:
        with self._lock:
            return len(self._subjects)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                subjects = list(self._subjects)
            for subject, beacon, staff in subjects:
                self.devices.sighting(subject, beacon, staff=staff, rssi=-55 if staff else -60)
            self._stop.wait(1.0)

    def __enter__(self) -> Lingering:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@contextlib.contextmanager
def sampling_rss(runner: Runner, every_s: float = 0.2) -> Iterator[list[tuple[float, float]]]:
    """``(monotonic time, RSS MB)`` of ``runner`` every ``every_s`` while the block runs."""
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    import psutil  # noqa: PLC0415

    def sample() -> None:
        while not stop.is_set():
            with contextlib.suppress(psutil.Error, AssertionError):
                samples.append((time.monotonic(), runner.rss_mb()))
            stop.wait(every_s)

    thread = threading.Thread(target=sample, name="rss", daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(5)
