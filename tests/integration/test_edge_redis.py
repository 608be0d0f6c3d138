"""The live edge runner with Redis: shared budgets, crash recovery, a Redis outage."""

from __future__ import annotations

import resource
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from floorwalker import services
from floorwalker.dashboards.report import LiveReport, RuleDay, todays_report_html
from floorwalker.devices.registry import load_registries
from floorwalker.rules.loader import load_rules_for
from tests.integration.conftest import (
    Lingering,
    Probe,
    StartEdge,
    StartProcess,
    StoreFiles,
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
    metrics_port = services.free_port()
    runners = [
        start_process(
            files,
            redis=redis_service.url,
            client_id=f"{unique_prefix}-{name}",
            env_extra={"FLOORWALKER_METRICS_PORT": str(metrics_port)} if name == "A" else {},
        )
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
        budget = client.hgetall(f"{unique_prefix}:guard:bud:budget:budget-dwell")
    finally:
        client.close()
    # Issued and still reserved (none redeemed, none expired yet), nothing spent.
    counts = (int(budget["issued"]), int(budget["reserved"]), int(budget["spent"]))
    assert counts == (BUDGET, BUDGET, 0)
    # Runner A's gauges read the shared budget: all of it used, by both runners.
    used = wait_metric(
        metrics_port, "floorwalker_budget_used", BUDGET, rule="budget-dwell", unit="coupons"
    )
    assert used == BUDGET
    text = scrape(metrics_port)
    labels = {"rule": "budget-dwell", "unit": "coupons"}
    assert metric(text, "floorwalker_budget_remaining", **labels) == 0.0
    # Today's campaign report, from what both runners recorded in Redis.
    row = _todays_row(redis_service.url, files, unique_prefix, "budget-dwell", sent=BUDGET)
    assert row.coupons == BUDGET and row.blocked.get("budget", 0) > 0
    assert row.budget is not None and row.budget.remaining_coupons == 0


def _todays_row(url: str, files: StoreFiles, prefix: str, rule: str, *, sent: int) -> RuleDay:
    """The rule's row of today's report once the runners' record shows ``sent``."""
    registries = load_registries([files.registry])
    ruleset = load_rules_for(files.rules, registries)
    deadline = time.monotonic() + 10.0
    while True:
        report = LiveReport(url, ruleset, registries, prefix=f"{prefix}:").report()
        (row,) = [r for r in report.totals() if r.rule == rule]
        if row.sent >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert row.sent == sent, row
    html = todays_report_html(url, ruleset, registries, prefix=f"{prefix}:")
    assert "<table id='rules'>" in html and rule in html
    return row


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
    # The kill may land before the runner read step 1's PUBACK: its outbox then
    # publishes that page again at start, the same page (QoS 1 is at least once;
    # the band deduplicates by alert id and step). Never a step twice, never a third.
    steps = list(dict.fromkeys((p.json()["step"], p.topic.rsplit("/", 2)[-2]) for p in pages))
    assert steps == [(1, "band-08"), (2, "band-07")], steps
    for step, band in steps:
        same = {p.payload for p in pages if p.json()["step"] == step}
        assert len(same) == 1, f"step {step} to {band} went out in {len(same)} versions"
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


def _laughs() -> bytes:
    """A YAML "billion laughs": 9**9 leaves if anything expanded its aliases."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{n}: &l{n} [" + ",".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, 9)]
    return ("id: laughs\n" + "\n".join(lines) + "\n").encode()


GARBLED_RELOADS = {
    "rule with NUL": (
        "rules",
        b"id: nul\nwhen: {bell: {}}\nalert: {to: nearest, message: a\x00b}\n",
    ),
    "rule with RS": ("rules", b"id: rs\x1e\nwhen: {bell: {}}\nalert: {to: nearest, message: x}\n"),
    "rule alias bomb": ("rules", _laughs()),
    "rule nested 2,000 deep": ("rules", b"id: deep\nwhen: " + b"[" * 2000 + b"]" * 2000 + b"\n"),
    "registry with NUL": ("registry", b"store: s001\x00\nzones: {}\n"),
    "registry alias bomb": ("registry", b"store: s001\nzones: {}\n" + _laughs()),
}


@pytest.mark.parametrize(("where", "garbled"), GARBLED_RELOADS.values(), ids=GARBLED_RELOADS)
def test_a_garbled_reload_is_refused_and_the_runner_keeps_serving(
    tmp_path: Path,
    probe: Probe,
    start_edge: StartEdge,
    redis_service: services.RunningService,
    unique_prefix: str,
    where: str,
    garbled: bytes,
) -> None:
    files = write_store(tmp_path, rules={"bell": bell_rule()})
    load_profiles(redis_service.url, files, unique_prefix)
    # No file watching: the reload below is the only one.
    runner = start_edge(files, redis=redis_service.url, reload_poll_s=3600.0)
    place_staff(probe, {"band-07": "b-dairy"})
    probe.sync()
    good_registry = files.registry.read_bytes()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    if where == "rules":
        (files.rules / "garbled.yaml").write_bytes(garbled)
    else:
        files.registry.write_bytes(garbled)
    started = time.monotonic()
    assert runner.reload() is False
    assert time.monotonic() - started < 5.0
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mib < 200, f"the refused reload grew the process by {grown_mib:.0f} MiB"

    # The rules and the registry that were running still answer a bell.
    probe.bell("bell-dairy", token("press"))
    page = probe.wait_for(probe.is_alert("band-07"), 5.0, "an alert after the refused reload")
    assert page.json()["rule"] == "test-bell"
    # And once the file is fixed, a reload takes.
    if where == "rules":
        (files.rules / "garbled.yaml").unlink()
    else:
        files.registry.write_bytes(good_registry)
    assert runner.reload() is True
