"""``floorwalker run`` killed with SIGKILL keeps its timers: store snapshots in Redis.

Each test runs the runner as a subprocess (so ``kill -9`` is real), kills it in
the middle of a window and starts it again at once with the same MQTT client id
and Redis prefix. A runner that came back empty would see the shopper anew and
fire a full window after the restart; these tests ask for the original due time.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from floorwalker import services
from tests.integration.conftest import (
    CATALOG,
    STORE_ID,
    Lingering,
    Probe,
    RunnerProcess,
    StartEdge,
    StartProcess,
    bell_rule,
    dwell_rule,
    load_profiles,
    metric,
    scrape,
    token,
    wait_metric,
    wait_ready,
    write_store,
)

pytestmark = pytest.mark.integration

SNAPSHOT_EVERY_S = 1.0
"""The runner's default ``--snapshot-every``."""

ABSENCE_AFTER_S = 2.0
ABSENCE_WITHIN_S = 8.0
ABSENCE_RULE = f"""\
id: test-hesitant
description: hesitant-tester's shape, short - dwelled at the chilled shelf, bought no yogurt.
priority: 30
when:
  absence:
    after: {{dwell: {{zone_tag: chilled, at_least: {ABSENCE_AFTER_S:g}s}}}}
    missing: {{pos_item: {{category: yogurt}}}}
    within: {ABSENCE_WITHIN_S:g}s
offer:
  id: yogurt-sample
  message: Still deciding? Pick up a free sample at the dairy counter.
  expires: 1d
  cost: 1.00
limits:
  per_shopper:
    - {{count: 1, per: day}}
"""


def snapshot_key(prefix: str) -> str:
    return f"{prefix}:state:{STORE_ID}"


def read_snapshot(url: str, prefix: str) -> bytes | None:
    client = redis.Redis.from_url(url)
    try:
        value = client.get(snapshot_key(prefix))
    finally:
        client.close()
    assert value is None or isinstance(value, bytes)
    return value


def sleep_until(ts: float) -> None:
    time.sleep(max(0.0, ts - time.time()))


def restart(runner: RunnerProcess) -> float:
    """SIGKILL, then start again at once; the kill's wall-clock time."""
    runner.kill9()
    killed = time.time()
    runner.start()
    return killed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_dwell_in_progress_survives_kill_9_and_fires_on_time(
    tmp_path: Path,
    probe: Probe,
    start_process: StartProcess,
    redis_service: services.RunningService,
    unique_prefix: str,
) -> None:
    """chilled-dwell-bogo (10 s): killed 6 s in, the coupon still comes at 10 s, once."""
    catalog_rule = (CATALOG / "chilled-dwell-bogo.yaml").read_text(encoding="utf-8")
    files = write_store(tmp_path, rules={"chilled-dwell-bogo": catalog_rule})
    load_profiles(redis_service.url, files, unique_prefix)
    runner = start_process(files, redis=redis_service.url, client_id=f"{unique_prefix}-edge")
    wait_ready(probe, [runner])
    with Lingering(probe) as crowd:
        crowd.add("app-loyal", "b-dairy")
        first = crowd.wait_first("app-loyal")
        sleep_until(first + 6.0)
        assert read_snapshot(redis_service.url, unique_prefix), "a snapshot before the kill"
        assert probe.messages(probe.is_offer()) == []
        killed = restart(runner)
        assert killed - first < 7.0, "the kill must come well inside the 10 s dwell"
        try:
            offer = probe.wait_for(
                probe.is_offer("app-loyal"), first + 14.0 - time.time(), "the coupon"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nrunner log:\n{runner.log_tail()}") from None
        late = offer.at - first
        assert 9.5 <= late <= 11.5, f"coupon came {late:.2f} s after the first sighting"
        payload = offer.json()
        assert payload["rule"] == "chilled-dwell-bogo"
        assert payload["ts"] == pytest.approx(first + 10.0, abs=0.01), "its original due time"
        time.sleep(2.0)  # a second coupon after the restart would be here by now
        probe.sync(timeout=30.0)
    offers = probe.messages(probe.is_offer())
    assert len(offers) == 1, [o.payload for o in offers]
    assert runner.alive, runner.log_tail()


def test_an_absence_window_survives_kill_9_and_fires_at_its_due_time(
    tmp_path: Path,
    probe: Probe,
    start_process: StartProcess,
    redis_service: services.RunningService,
    unique_prefix: str,
) -> None:
    """hesitant-tester's shape: dwell 2 s, then no yogurt bought within 8 s -> the offer."""
    files = write_store(tmp_path, rules={"test-hesitant": ABSENCE_RULE})
    load_profiles(redis_service.url, files, unique_prefix)
    runner = start_process(files, redis=redis_service.url, client_id=f"{unique_prefix}-edge")
    wait_ready(probe, [runner])
    with Lingering(probe) as crowd:
        crowd.add("app-loyal", "b-dairy")
        first = crowd.wait_first("app-loyal")
        opened = first + ABSENCE_AFTER_S  # the dwell that opens the window
        due = opened + ABSENCE_WITHIN_S
        sleep_until(opened + 1.5)
        crowd.add("app-loyal", "b-coffee")  # walks on: the window is no dwell timer
        sleep_until(opened + 3.0)
        assert read_snapshot(redis_service.url, unique_prefix), "a snapshot before the kill"
        killed = restart(runner)
        assert opened < killed < due - 4.0, "the kill must come well inside the window"
        try:
            offer = probe.wait_for(probe.is_offer("app-loyal"), due + 5.0 - time.time(), "offer")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nrunner log:\n{runner.log_tail()}") from None
        assert offer.json()["rule"] == "test-hesitant"
        assert offer.json()["ts"] == pytest.approx(due, abs=0.01), "its original due time"
        late = offer.at - due
        assert -0.1 <= late <= SNAPSHOT_EVERY_S + 1.0, f"offer came {late:+.2f} s from due"
        time.sleep(2.0)
        probe.sync(timeout=30.0)
    offers = probe.messages(probe.is_offer())
    assert len(offers) == 1, [o.payload for o in offers]
    assert runner.alive, runner.log_tail()


def test_an_offer_decided_again_after_a_restore_is_a_duplicate_not_a_second_coupon(
    tmp_path: Path,
    probe: Probe,
    start_process: StartProcess,
    redis_service: services.RunningService,
    unique_prefix: str,
) -> None:
    """Killed after the coupon went out but before the next snapshot: the restored
    dwell fires again, with the same action id, and the Redis guard store refuses it."""
    dwell_s = 5.0
    files = write_store(
        tmp_path, rules={"dwell": dwell_rule("dup-dwell", at_least=f"{dwell_s:g}s")}
    )
    load_profiles(redis_service.url, files, unique_prefix)
    port = free_port()
    runner = start_process(
        files,
        redis=redis_service.url,
        client_id=f"{unique_prefix}-edge",
        env_extra={"FLOORWALKER_METRICS_PORT": str(port)},
    )
    wait_ready(probe, [runner])
    with Lingering(probe) as crowd:
        crowd.add("app-loyal", "b-dairy")
        first = crowd.wait_first("app-loyal")
        sleep_until(first + 3.0)
        before_fire = read_snapshot(redis_service.url, unique_prefix)
        assert before_fire, "a snapshot with the dwell in progress"
        offer = probe.wait_for(probe.is_offer("app-loyal"), first + 9.0 - time.time(), "coupon")
        assert offer.json()["ts"] == pytest.approx(first + dwell_s, abs=0.01)
        assert metric(scrape(port), "floorwalker_suppressed_total", reason="duplicate") == 0

        # The kill lands before the snapshot that knows the coupon was sent.
        runner.kill9()
        client = redis.Redis.from_url(redis_service.url)
        try:
            client.set(snapshot_key(unique_prefix), before_fire)
        finally:
            client.close()
        runner.start()
        try:
            wait_ready(probe, [runner])
            wait_metric(
                port,
                "floorwalker_suppressed_total",
                1,
                timeout=15.0,
                rule="dup-dwell",
                reason="duplicate",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nrunner log:\n{runner.log_tail()}") from None
        time.sleep(3.0)  # listen on: no second coupon
        probe.sync(timeout=30.0)
    offers = probe.messages(probe.is_offer())
    ids = Counter(o.json()["id"] for o in offers)
    assert len(offers) == 1, f"the coupon was doubled: {ids}"
    assert metric(scrape(port), "floorwalker_actions_total", type="offer") == 0, (
        "the restarted runner sent no offer"
    )
    assert runner.alive, runner.log_tail()


def test_snapshots_ride_over_a_redis_outage_without_delaying_alerts(
    tmp_path: Path, probe: Probe, start_edge: StartEdge, unique_prefix: str
) -> None:
    """Writes fail while Redis is down (counted), alerts keep flowing, and once Redis
    is back the next interval's snapshot lands."""
    files = write_store(tmp_path, rules={"bell": bell_rule()})
    with services.redis(services.RedisSettings(), tmp_path / "redis") as own_redis:
        load_profiles(own_redis.url, files, unique_prefix)
        runner = start_edge(files, redis=own_redis.url, metrics_port=0)
        assert runner.metrics_port is not None
        port = runner.metrics_port
        with Lingering(probe) as crowd:
            crowd.add("band-07", "b-dairy", staff=True, rssi=-55)
            crowd.add("app-loyal", "b-dairy")  # the store changes every second
            wait_metric(port, "floorwalker_snapshot_seconds_count", 1)
            assert metric(scrape(port), "floorwalker_snapshot_bytes", store=STORE_ID) > 0
            assert read_snapshot(own_redis.url, unique_prefix)

            own_redis.stop()
            wait_metric(port, "floorwalker_snapshot_errors_total", 1, timeout=5.0)
            pressed = probe.bell("bell-dairy", token("press"))
            page = probe.wait_for(probe.is_alert("band-07"), 5.0, "an alert with Redis down")
            assert page.at - pressed < 1.0, "snapshot writes never hold up the core thread"

            own_redis.start()
            client = redis.Redis.from_url(own_redis.url)
            try:
                client.delete(snapshot_key(unique_prefix))
                deadline = time.monotonic() + 5.0
                while not client.exists(snapshot_key(unique_prefix)):
                    assert time.monotonic() < deadline, "no snapshot written after the outage"
                    time.sleep(0.1)
            finally:
                client.close()
        errors = metric(scrape(port), "floorwalker_snapshot_errors_total")
        time.sleep(2.5 * SNAPSHOT_EVERY_S)
        assert metric(scrape(port), "floorwalker_snapshot_errors_total") == errors, "recovered"
