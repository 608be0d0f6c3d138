"""The live edge runner with Redis: shared budgets, crash recovery, a Redis outage."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from floorwalker import services
from tests.integration.conftest import (
    Lingering,
    Probe,
    StartEdge,
    StartProcess,
    bell_rule,
    consenting,
    dwell_rule,
    load_profiles,
    metric,
    place_staff,
    scrape,
    token,
    wait_metric,
    wait_ready,
    write_store,
)
from tests.integration.test_edge_live import SNACK_RULE

pytestmark = pytest.mark.integration

BUDGET = 4
SHOPPERS = 12


def test_two_runners_sharing_redis_never_overspend_a_budget(
    tmp_path: Path,
    probe: Probe,
    start_process: StartProcess,
    redis_service: services.RunningService,
    unique_prefix: str,
) -> None:
    """Both runners see every sighting and fire every dwell; Redis admits each coupon once."""
    shoppers = [f"app-b{i:02d}" for i in range(SHOPPERS)]
    limits = f"  per_shopper: []\n  budget: {{coupons: {BUDGET}}}\n"
    files = write_store(
        tmp_path,
        rules={"dwell": dwell_rule("budget-dwell", at_least="2s", limits=limits)},
        profiles=[consenting(s) for s in shoppers],
    )
    assert load_profiles(redis_service.url, files, unique_prefix) == SHOPPERS
    runners = [
        start_process(files, redis=redis_service.url, client_id=f"{unique_prefix}-{name}")
        for name in ("A", "B")
    ]
    wait_ready(probe, runners)

    with Lingering(probe) as crowd:
        for shopper in shoppers:
            crowd.add(shopper, "b-dairy")
        # Every dwell is due 2 s after its first sighting; give both runners time to try.
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline and len(probe.messages(probe.is_offer())) < BUDGET:
            time.sleep(0.1)
        time.sleep(max(0.0, max(crowd.first.values()) + 4.0 - time.time()))
        probe.sync(runners=2)

    assert all(r.alive for r in runners), [r.log_tail() for r in runners]
    offers = probe.messages(probe.is_offer())
    ids = Counter(o.json()["id"] for o in offers)
    codes = Counter(o.json()["code"] for o in offers)
    assert len(offers) <= BUDGET, f"{len(offers)} coupon messages for a budget of {BUDGET}"
    assert max(ids.values(), default=0) == 1, f"a coupon sent twice: {ids}"
    assert max(codes.values(), default=0) == 1, f"a code sent twice: {codes}"
    assert len(offers) == BUDGET, "enough shoppers dwelled to spend the whole budget"
    assert len({o.topic for o in offers}) == BUDGET, "one coupon per shopper"
    assert all(o.json()["rule"] == "budget-dwell" for o in offers)
    client = redis.Redis.from_url(redis_service.url, decode_responses=True)
    try:
        spent = client.hget(f"{unique_prefix}:guard:bud:budget:budget-dwell", "coupons")
    finally:
        client.close()
    assert spent is not None and int(spent) == BUDGET


def test_escalation_survives_kill_9_and_fires_once_on_time(
    tmp_path: Path,
    probe: Probe,
    start_process: StartProcess,
    redis_service: services.RunningService,
    unique_prefix: str,
) -> None:
    step_s = 6.0
    files = write_store(tmp_path, rules={"bell": bell_rule(escalate=[(f"{step_s:g}s", "next")])})
    load_profiles(redis_service.url, files, unique_prefix)
    client_id = f"{unique_prefix}-edge"
    runner = start_process(files, redis=redis_service.url, client_id=client_id)
    wait_ready(probe, [runner])
    where = {"band-08": "b-dairy", "band-07": "b-coffee", "band-01": "b-back"}
    place_staff(probe, where)
    with Lingering(probe) as staff:
        for band, beacon in where.items():
            staff.add(band, beacon, staff=True, rssi=-55)
        probe.sync()
        pressed = probe.bell("bell-dairy", token("press"))
        page = probe.wait_for(probe.is_alert(), 3.0, "the step 1 page")
        assert page.topic == probe.topic("band/band-08/alert")
        alert_id = page.json()["id"]
        assert page.json()["step"] == 1

        runner.kill9()
        killed = time.time()
        assert killed < pressed + step_s - 3.0, "the kill must come well before step 2 is due"
        runner.start()

        try:
            second = probe.wait_for(
                lambda m: probe.is_alert(alert=alert_id)(m) and m.json()["step"] == 2,
                step_s + 5.0,
                "step 2 after the restart",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nrunner log:\n{runner.log_tail()}") from None
        due = pressed + step_s
        assert -0.1 <= second.at - due <= 1.0, f"step 2 came {second.at - due:+.2f} s from due"
        assert second.topic == probe.topic("band/band-07/alert"), "the next nearest band"
        time.sleep(1.5)  # anything repeated after the restart would be here by now
        probe.sync(timeout=30.0)
    pages = probe.messages(probe.is_alert(alert=alert_id))
    steps = [(p.json()["step"], p.topic.rsplit("/", 2)[-2]) for p in pages]
    assert steps == [(1, "band-08"), (2, "band-07")], steps
    assert runner.alive, runner.log_tail()


def test_redis_outage_keeps_alerts_flowing_and_stops_offers(
    tmp_path: Path,
    probe: Probe,
    start_edge: StartEdge,
    unique_prefix: str,
) -> None:
    files = write_store(
        tmp_path, rules={"bell": bell_rule(), "dwell": dwell_rule("outage-dwell", at_least="2s")}
    )
    with services.redis(services.RedisSettings(), tmp_path / "redis") as own_redis:
        load_profiles(own_redis.url, files, unique_prefix)
        runner = start_edge(files, redis=own_redis.url, metrics_port=0)
        assert runner.metrics_port is not None
        port = runner.metrics_port
        place_staff(probe, {"band-07": "b-dairy", "band-08": "b-appl"})
        probe.sync()
        own_redis.stop()
        assert not own_redis.running

        # A staff alert still goes out (alerts fail open).
        probe.bell("bell-dairy", token("press"))
        page = probe.wait_for(probe.is_alert("band-07"), 5.0, "an alert with Redis down")
        assert page.json()["step"] == 1

        # A dwell that would earn a coupon earns none (offers fail closed).
        crowd = Lingering(probe)
        crowd.add("app-loyal", "b-dairy")
        with crowd:
            # The coupon would be due 2 s after the first sighting; wait past that.
            time.sleep(max(0.0, crowd.wait_first("app-loyal") + 3.5 - time.time()))
            probe.sync()
        wait_metric(
            port,
            "floorwalker_suppressed_total",
            1,
            rule="outage-dwell",
            reason="guard_store_unavailable",
        )
        assert probe.messages(probe.is_offer()) == []

        # Still running: the next message is processed.
        probe.bell("bell-appl", token("press"))
        probe.wait_for(probe.is_alert("band-08"), 5.0, "a second alert with Redis down")
        assert wait_metric(port, "floorwalker_redis_errors_total", 1) >= 1
        assert metric(scrape(port), "floorwalker_actions_total", type="offer") == 0


def test_sighup_reloads_the_rules(
    tmp_path: Path,
    probe: Probe,
    start_process: StartProcess,
    redis_service: services.RunningService,
    unique_prefix: str,
) -> None:
    files = write_store(tmp_path, rules={"bell": bell_rule()})
    load_profiles(redis_service.url, files, unique_prefix)
    # File watching off in practice (an hour between looks): only SIGHUP can reload.
    runner = start_process(
        files,
        redis=redis_service.url,
        client_id=f"{unique_prefix}-hup",
        env_extra={"FLOORWALKER_RELOAD_POLL_S": "3600"},
    )
    wait_ready(probe, [runner])
    (files.rules / "snack-offer.yaml").write_text(SNACK_RULE, encoding="utf-8")
    probe.pos_item(token("line"), category="snacks", shopper="app-loyal")
    probe.sync()
    assert probe.messages(probe.is_offer()) == [], "not reloaded yet: no signal was sent"

    assert runner.proc is not None
    runner.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10.0
    while not probe.messages(probe.is_offer("app-loyal")):
        assert time.monotonic() < deadline, f"no coupon after SIGHUP:\n{runner.log_tail()}"
        probe.pos_item(token("line"), category="snacks", shopper="app-loyal")
        probe.sync()
    offer = probe.messages(probe.is_offer("app-loyal"))[0].json()
    assert offer["rule"] == "snack-offer"
    assert runner.alive
