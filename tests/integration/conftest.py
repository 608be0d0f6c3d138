"""Helpers for end-to-end tests of the live edge runner on real Mosquitto and Redis.

* :class:`Probe` - an MQTT client that records every message under ``{prefix}/#``
  with its arrival time and plays the store's devices (sightings, bells, POS
  lines, staff acks). :meth:`Probe.sync` is an in-order barrier: it publishes a
  message to a store no registry knows and waits for the runner's dead letter,
  which the runner can only send after it has handled everything published
  before it.
* :class:`Lingering` - a background thread reporting sightings once a second
  with device ``ts`` = wall time, as shopper phones and staff bands do.
* :func:`write_store` - a registry YAML, a profiles JSONL and a rules directory
  in ``tmp_path``.
* ``start_edge`` - an in-process runner (core loop in a thread);
  ``start_process`` - a ``floorwalker run`` subprocess.

The session broker has authentication and ACLs on (tests/conftest.py): the
probe connects as the test harness's superuser (it plays every device at
once), runners under test as the engine, with the engine's own identity.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from floorwalker import services
from floorwalker.engine.core.profiles import Profile
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.edge import EdgeRunner, running
from floorwalker.engine.runners.settings import EdgeSettings
from floorwalker.errors import ServiceError
from floorwalker.simulators.faults.harness import Runner
from tests.conftest import SessionBroker
from tests.engine.conftest import STORE

CATALOG = Path(__file__).resolve().parents[2] / "floorwalker" / "rules" / "catalog"
FLOORWALKER = Path(sys.executable).with_name("floorwalker")
STORE_ID: str = STORE["store"]
DAY = 86400.0
SYNC_STORE = "zz-sync"
"""A store no registry has: messages to it come back as ``unknown_store`` dead letters."""
PERMISSIVE_POLICY = "offers_per_shopper: []\nfatigue: off\nquiet_hours: []\n"

_tokens = itertools.count(1)


def token(what: str = "m") -> str:
    """A message id unique within the session."""
    return f"{what}-{os.getpid()}-{next(_tokens)}"


# --------------------------------------------------------------------------- probe


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    at: float
    """Wall-clock arrival at the probe."""

    def json(self) -> dict[str, Any]:
        obj = orjson.loads(self.payload)
        assert isinstance(obj, dict), self.payload
        return obj


Match = Callable[[Received], bool]


class Probe:
    """Records every message under ``{prefix}/#`` and publishes as the store's devices."""

    def __init__(self, broker: BrokerAddress, prefix: str, client_id: str) -> None:
        self.host, self.port = broker.host, broker.port
        self.prefix = prefix
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        client.max_inflight_messages_set(1000)
        if broker.username is not None:
            client.username_pw_set(broker.username, broker.password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.client = client

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> Probe:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise AssertionError(f"probe did not subscribe to {self.prefix}/# within {timeout} s")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        assert not reason.is_failure, reason
        client.subscribe(f"{self.prefix}/#", qos=1)

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, _codes: Any, _p: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        got = Received(msg.topic, bytes(msg.payload), time.time())
        with self._cond:
            self.received.append(got)
            self._cond.notify_all()

    # ------------------------------------------------------------------ topics

    def topic(self, suffix: str, store: str = STORE_ID) -> str:
        return f"{self.prefix}/{store}/{suffix}"

    def is_offer(self, shopper: str | None = None) -> Match:
        head = f"{self.prefix}/{STORE_ID}/shopper/"
        exact = None if shopper is None else f"{head}{shopper}/offer"

        def match(m: Received) -> bool:
            if exact is not None:
                return m.topic == exact
            return m.topic.startswith(head) and m.topic.endswith("/offer")

        return match

    def is_alert(self, band: str | None = None, alert: str | None = None) -> Match:
        head = f"{self.prefix}/{STORE_ID}/band/"

        def match(m: Received) -> bool:
            if not (m.topic.startswith(head) and m.topic.endswith("/alert")):
                return False
            if band is not None and m.topic != f"{head}{band}/alert":
                return False
            return alert is None or m.json().get("id") == alert

        return match

    def is_deadletter(self, reason: str | None = None, store: str = STORE_ID) -> Match:
        topic = f"{self.prefix}/{store}/deadletter"

        def match(m: Received) -> bool:
            return m.topic == topic and (reason is None or m.json().get("reason") == reason)

        return match

    # ------------------------------------------------------------------ reading

    def messages(self, match: Match) -> list[Received]:
        with self._cond:
            return [m for m in self.received if match(m)]

    def wait_count(self, match: Match, n: int, timeout: float, what: str) -> list[Received]:
        """Wait until at least ``n`` recorded messages match; return all that match."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.received if match(m)]
                if len(found) >= n:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout} s waiting for {n} x {what}; "
                        f"got {len(found)}. Last messages:\n{self._tail()}"
                    )
                self._cond.wait(remaining)

    def wait_for(self, match: Match, timeout: float, what: str) -> Received:
        return self.wait_count(match, 1, timeout, what)[0]

    def _tail(self, n: int = 15) -> str:
        return "\n".join(f"  {m.at:.3f} {m.topic} {m.payload[:160]!r}" for m in self.received[-n:])

    # ------------------------------------------------------------------ publishing

    def publish_raw(self, topic: str, payload: bytes, timeout: float = 10.0) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout)
        assert info.is_published(), f"no PUBACK for {topic} within {timeout} s"

    def publish(self, suffix: str, payload: Mapping[str, Any] | list[Any] | bytes) -> None:
        """Publish to ``{prefix}/{store}/{suffix}`` (QoS 1, waits for the PUBACK)."""
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        self.publish_raw(self.topic(suffix), body)

    def sighting(
        self,
        subject: str,
        beacon: str,
        *,
        staff: bool = False,
        rssi: int = -65,
        gateway: str = "gw-1",
        ts: float | None = None,
    ) -> float:
        at = time.time() if ts is None else ts
        body: dict[str, Any] = {"ts": at, "beacon": beacon, "rssi": rssi}
        body["band" if staff else "shopper"] = subject
        self.publish(f"beacon/{gateway}", body)
        return at

    def bell(self, bell: str, press_id: str, *, ts: float | None = None) -> float:
        at = time.time() if ts is None else ts
        self.publish(f"bell/{bell}", {"id": press_id, "ts": at, "reason": "help"})
        return at

    def pos_item(
        self,
        line_id: str,
        *,
        category: str,
        shopper: str | None,
        receipt: str = "r-1",
        terminal: str = "pos-1",
        ts: float | None = None,
    ) -> float:
        at = time.time() if ts is None else ts
        body: dict[str, Any] = {
            "id": line_id,
            "ts": at,
            "receipt": receipt,
            "sku": f"sku-{category}",
            "category": category,
            "qty": 1,
            "price": 99.0,
        }
        if shopper is not None:
            body["shopper"] = shopper
        self.publish(f"pos/{terminal}", body)
        return at

    def ack(self, band: str, alert: str, action: str = "ack") -> float:
        at = time.time()
        self.publish(
            f"band/{band}/ack", {"id": token("ack"), "ts": at, "alert": alert, "action": action}
        )
        return at

    def sync(self, runners: int = 1, timeout: float = 15.0) -> None:
        """Wait until ``runners`` runners have handled everything published so far.

        Publishes to a store no registry knows; each runner dead-letters it as
        ``unknown_store`` after handling (and publishing the actions of) every
        earlier message. Repeats the ping while waiting, so it also works as a
        "runner is up and subscribed" check right after a start.
        """
        mark = token("sync")
        topic = f"{self.prefix}/{SYNC_STORE}/bell/ping"
        dead = f"{self.prefix}/{SYNC_STORE}/deadletter"

        def match(m: Received) -> bool:
            return m.topic == dead and mark in m.payload.decode("utf-8", "replace")

        deadline = time.monotonic() + timeout
        while True:
            self.publish_raw(topic, orjson.dumps({"id": mark, "ts": time.time()}))
            with self._cond:
                self._cond.wait_for(lambda: len(self.messages(match)) >= runners, 0.5)
            if len(self.messages(match)) >= runners:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{runners} runner(s) did not answer a sync ping within {timeout} s; "
                    f"last messages:\n{self._tail()}"
                )


@pytest.fixture
def probe(tester: BrokerAddress, unique_prefix: str) -> Iterator[Probe]:
    p = Probe(tester, unique_prefix, f"{unique_prefix}-probe").start()
    try:
        yield p
    finally:
        p.stop()


# --------------------------------------------------------------------------- sightings


@dataclass
class Lingering:
    """Reports sightings of each subject once a second, ``ts`` = wall time, in a thread."""

    probe: Probe
    every_s: float = 1.0
    subjects: dict[str, tuple[str, bool, int]] = field(default_factory=dict)
    first: dict[str, float] = field(default_factory=dict)
    """Subject -> ``ts`` of its first sighting."""
    errors: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def add(self, subject: str, beacon: str, *, staff: bool = False, rssi: int = -65) -> None:
        with self._lock:
            self.subjects[subject] = (beacon, staff, rssi)

    def remove(self, subject: str) -> None:
        with self._lock:
            self.subjects.pop(subject, None)

    def wait_first(self, subject: str, timeout: float = 5.0) -> float:
        """The ``ts`` of the subject's first sighting, once it has been published."""
        deadline = time.monotonic() + timeout
        while subject not in self.first:
            assert not self.errors, f"sighting publisher failed: {self.errors!r}"
            assert time.monotonic() < deadline, f"no sighting of {subject} within {timeout} s"
            time.sleep(0.02)
        return self.first[subject]

    def tick(self) -> None:
        """One round of sightings, now (also used synchronously before start)."""
        with self._lock:
            subjects = list(self.subjects.items())
        for subject, (beacon, staff, rssi) in subjects:
            at = self.probe.sighting(subject, beacon, staff=staff, rssi=rssi)
            self.first.setdefault(subject, at)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tick()
            except BaseException as exc:  # surfaced by __exit__
                self.errors.append(exc)
                return
            next_at += self.every_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Lingering:
        self._thread = threading.Thread(target=self._run, name="lingering", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        assert not self.errors, f"sighting publisher failed: {self.errors!r}"


def place_staff(probe: Probe, where: Mapping[str, str], rounds: int = 2) -> None:
    """Locate staff bands at once: strong sightings (2 points each) place a band in 2 rounds."""
    for _ in range(rounds):
        for band, beacon in where.items():
            probe.sighting(band, beacon, staff=True, rssi=-55)


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class StoreFiles:
    registry: Path
    profiles: Path
    rules: Path


def consenting(shopper: str, **extra: Any) -> Profile:
    now = time.time()
    values: dict[str, Any] = {
        "tier": "gold",
        "segment": "loyal",
        "marketing": True,
        "first_visit": now - 400 * DAY,
        "last_visit": now - 3 * DAY,
        "lifetime_value": 1200.0,
    }
    values.update(extra)
    return Profile(shopper, **values)


def default_profiles() -> list[Profile]:
    return [
        consenting("app-loyal"),
        consenting("app-nocons", tier="member", segment="regular", marketing=False),
    ]


def write_rules(directory: Path, rules: Mapping[str, str], policy: str | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rules.items():
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    if policy is not None:
        (directory / "policy.yaml").write_text(policy, encoding="utf-8")


def write_store(
    root: Path,
    *,
    rules: Mapping[str, str] | None = None,
    catalog: bool = False,
    policy: str | None = PERMISSIVE_POLICY,
    profiles: Iterable[Profile] | None = None,
) -> StoreFiles:
    """Registry (tests.engine.conftest.STORE), profiles and a rules directory under ``root``.

    ``catalog=True`` copies the shipped catalog (with its own policy); ``rules``
    adds or replaces files (name -> YAML text) in the rules directory.
    """
    root.mkdir(parents=True, exist_ok=True)
    registry = root / "store.yaml"
    registry.write_text(yaml.safe_dump(STORE, sort_keys=False), encoding="utf-8")
    profile_path = root / "profiles.jsonl"
    chosen = default_profiles() if profiles is None else list(profiles)
    profile_path.write_bytes(b"".join(orjson.dumps(p.to_json()) + b"\n" for p in chosen))
    rules_dir = root / "rules"
    if catalog:
        shutil.copytree(CATALOG, rules_dir)
        policy = None
    write_rules(rules_dir, rules or {}, policy)
    return StoreFiles(registry, profile_path, rules_dir)


def bell_rule(rule_id: str = "test-bell", escalate: Iterable[tuple[str, str]] = ()) -> str:
    """A service-bell style rule; ``escalate`` is (after, to) pairs such as ("2s", "next")."""
    steps = "".join(f"    - {{after: {after}, to: {to}}}\n" for after, to in escalate)
    text = (
        f"id: {rule_id}\n"
        "when:\n  bell: {}\n"
        "alert:\n  to: nearest\n  priority: high\n"
        "  message: A customer needs help in {zone}.\n"
    )
    return text + ("  escalate:\n" + steps if steps else "")


def dwell_rule(
    rule_id: str = "test-dwell", at_least: str = "3s", limits: str = "  per_shopper: []\n"
) -> str:
    return (
        f"id: {rule_id}\n"
        "priority: 50\n"
        f"when:\n  dwell: {{zone_tag: chilled, at_least: {at_least}}}\n"
        "offer:\n  id: yogurt-bogo\n"
        "  message: Buy one yogurt, get one free.\n  expires: 2h\n  cost: 1.20\n"
        "limits:\n" + limits
    )


# --------------------------------------------------------------------------- runners


StartEdge = Callable[..., EdgeRunner]


@pytest.fixture
def start_edge(
    session_broker: SessionBroker, unique_prefix: str, probe: Probe, tmp_path: Path
) -> Iterator[StartEdge]:
    """Start an in-process runner on the session broker, as the engine; waits for a sync.

    Its durable outbox lives in ``tmp_path/outbox`` unless ``outbox_dir`` is given.
    """
    engine = session_broker.address("engine")
    with contextlib.ExitStack() as stack:

        def start(
            files: StoreFiles, *, redis: str | None = None, client_id: str | None = None, **kw: Any
        ) -> EdgeRunner:
            settings = EdgeSettings(
                mqtt=session_broker.service.url,
                mqtt_username=engine.username,
                mqtt_password=engine.password,
                redis=redis,
                registries=(files.registry,),
                rules=files.rules,
                profiles=None if redis else files.profiles,
                prefix=unique_prefix,
                redis_prefix=f"{unique_prefix}:",
                client_id=client_id or f"{unique_prefix}-edge",
                **{"outbox_dir": tmp_path / "outbox", **kw},
            )
            runner = stack.enter_context(running(settings))
            probe.sync()
            return runner

        yield start


class RunnerProcess(Runner):
    """``floorwalker run`` as a child process, its output in a log file (the fault suite's)."""


StartProcess = Callable[..., RunnerProcess]


def wait_ready(probe: Probe, procs: list[RunnerProcess], timeout: float = 30.0) -> None:
    """Wait until every runner process answers a sync; fail at once if one exits."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in procs:
            if not proc.alive:
                code = proc.proc.returncode if proc.proc is not None else None
                raise AssertionError(
                    f"runner exited with code {code} before it was ready; "
                    f"{proc.log}:\n{proc.log_tail()}"
                )
        try:
            probe.sync(runners=len(procs), timeout=1.0)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


@pytest.fixture
def start_process(
    session_broker: SessionBroker, unique_prefix: str, tmp_path: Path
) -> Iterator[StartProcess]:
    """Start ``floorwalker run`` subprocesses as the engine; all stopped at the end of the test.

    The password goes in a file (``--mqtt-password-file``): a command line is public.
    Their durable outboxes live in ``tmp_path/outbox`` (one file per client id).
    """
    started: list[RunnerProcess] = []
    password_file = session_broker.password_file("engine", tmp_path)
    engine = session_broker.address("engine")

    def start(
        files: StoreFiles,
        *,
        redis: str,
        client_id: str,
        env_extra: Mapping[str, str] = {},
        args: Iterable[str] = (),
    ) -> RunnerProcess:
        argv = [
            str(FLOORWALKER),
            "run",
            "--mqtt",
            session_broker.service.url,
            "--mqtt-username",
            str(engine.username),
            "--mqtt-password-file",
            str(password_file),
            "--redis",
            redis,
            "--registry",
            str(files.registry),
            "--rules",
            str(files.rules),
            "--client-id",
            client_id,
            "--prefix",
            unique_prefix,
            *args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOORWALKER_")}
        env["FLOORWALKER_REDIS_PREFIX"] = f"{unique_prefix}:"
        env["FLOORWALKER_OUTBOX_DIR"] = str(tmp_path / "outbox")
        env.update(env_extra)
        log = tmp_path / f"runner-{client_id.replace('/', '_')}.log"
        proc = RunnerProcess(argv, env, log).start()
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Debian's headless chromium, driven by playwright (which cannot download its own here)."""
    try:
        executable = services.find_binary("chromium")
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
    with sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        browser = pw.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


# --------------------------------------------------------------------------- metrics


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body: bytes = resp.read()
    return body.decode()


def metric(text: str, sample: str, **labels: str) -> float:
    """Sum of the samples named ``sample`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def wait_metric(
    port: int, sample: str, at_least: float, timeout: float = 10.0, **labels: str
) -> float:
    """Poll /metrics until ``sample`` reaches ``at_least``; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = metric(scrape(port), sample, **labels)
        if value >= at_least:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{sample}{labels} stayed at {value}, expected >= {at_least}")
        time.sleep(0.1)


# --------------------------------------------------------------------------- redis


def load_profiles(redis_url: str, files: StoreFiles, prefix: str) -> int:
    """Import the store's profiles JSONL into Redis under the runner's key prefix."""
    from floorwalker.engine.stores.redis_profiles import import_profiles  # noqa: PLC0415

    return import_profiles(redis_url, files.profiles, prefix=f"{prefix}:")
