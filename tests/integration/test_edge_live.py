"""The live edge runner end to end on a real Mosquitto: timing, routing, bad input, reloads."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from floorwalker import services
from tests.integration.conftest import (
    Lingering,
    Probe,
    StartEdge,
    bell_rule,
    load_profiles,
    metric,
    place_staff,
    scrape,
    token,
    wait_metric,
    write_store,
)

pytestmark = pytest.mark.integration

COUPON_CODE = re.compile(r"^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$")


def _check_offer_fields(payload: dict[str, object]) -> None:
    assert set(payload) >= {"id", "ts", "rule", "offer", "code", "message", "expires"}, payload
    assert isinstance(payload["id"], str) and payload["id"]
    assert isinstance(payload["ts"], float)
    assert isinstance(payload["code"], str) and COUPON_CODE.match(payload["code"]), payload
    assert isinstance(payload["message"], str) and payload["message"]
    assert isinstance(payload["expires"], float) and payload["expires"] > payload["ts"]


def test_dwell_coupon_arrives_on_time_with_the_catalog_rule(
    tmp_path: Path, probe: Probe, start_edge: StartEdge
) -> None:
    """chilled-dwell-bogo as shipped: 10 s at the chilled shelf -> the coupon, then."""
    files = write_store(tmp_path, catalog=True)
    start_edge(files)
    with Lingering(probe) as crowd:
        crowd.add("app-loyal", "b-dairy")
        crowd.add("app-nocons", "b-dairy")  # same dwell, no marketing consent
        offer = probe.wait_for(probe.is_offer("app-loyal"), 16.0, "the yogurt coupon")
    first = crowd.first["app-loyal"]
    late = offer.at - first
    assert 9.5 <= late <= 11.5, f"coupon came {late:.2f} s after the first sighting"
    payload = offer.json()
    _check_offer_fields(payload)
    assert payload["rule"] == "chilled-dwell-bogo"
    assert payload["offer"] == "yogurt-bogo"
    assert payload["ts"] == pytest.approx(first + 10.0, abs=0.01)
    assert payload["expires"] == pytest.approx(payload["ts"] + 2 * 3600.0)
    probe.sync()
    assert len(probe.messages(probe.is_offer())) == 1, "one coupon, and none without consent"
    assert probe.messages(probe.is_deadletter()) == []


def test_bell_alert_routes_escalates_and_stops_on_ack(
    tmp_path: Path, probe: Probe, start_edge: StartEdge
) -> None:
    files = write_store(
        tmp_path, rules={"bell": bell_rule(escalate=[("2s", "next"), ("4s", "{role: manager}")])}
    )
    start_edge(files)
    # band-08 in the bell's zone, band-07 one zone away, the manager out of the way.
    where = {"band-08": "b-dairy", "band-07": "b-coffee", "band-01": "b-back"}
    place_staff(probe, where)
    with Lingering(probe) as staff:
        for band, beacon in where.items():
            staff.add(band, beacon, staff=True, rssi=-55)
        probe.sync()
        pressed = probe.bell("bell-dairy", token("press"))
        first = probe.wait_for(probe.is_alert(), 3.0, "the step 1 page")
        assert first.topic == probe.topic("band/band-08/alert"), "nearest band is in the zone"
        page = first.json()
        assert set(page) >= {"id", "ts", "rule", "priority", "zone", "message", "step"}, page
        assert page["step"] == 1 and page["rule"] == "test-bell"
        assert page["ts"] == pytest.approx(pressed, abs=0.01)
        assert page["message"] == "A customer needs help in dairy-chilled."
        assert page["zone"] == "dairy-chilled" and page["priority"] == "high"
        assert first.at - pressed < 1.0
        alert_id = page["id"]

        second = probe.wait_for(
            lambda m: probe.is_alert(alert=alert_id)(m) and m.json()["step"] == 2,
            5.0,
            "the step 2 page",
        )
        assert second.topic == probe.topic("band/band-07/alert"), "next nearest is adjacent"
        assert 1.9 <= second.at - pressed <= 3.0, f"step 2 after {second.at - pressed:.2f} s"

        probe.ack("band-07", alert_id)
        # Step 3 was due 4 s after the press; wait well past it.
        time.sleep(max(0.0, pressed + 5.5 - time.time()))
        probe.sync()
    pages = probe.messages(probe.is_alert(alert=alert_id))
    assert [p.json()["step"] for p in pages] == [1, 2], "the ack stopped the escalation"
    assert probe.messages(probe.is_deadletter()) == []


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_duplicate_deliveries_act_once(
    backend: str,
    tmp_path: Path,
    probe: Probe,
    start_edge: StartEdge,
    redis_service: services.RunningService,
) -> None:
    """A QoS 1 redelivery (same id twice) pages once and coupons once; copy 2 is dead-lettered."""
    files = write_store(tmp_path, catalog=True)
    if backend == "redis":
        load_profiles(redis_service.url, files, probe.prefix)
    start_edge(files, redis=redis_service.url if backend == "redis" else None)
    place_staff(probe, {"band-07": "b-dairy"})
    press, line = token("press"), token("line")
    pressed = probe.bell("bell-dairy", press)
    probe.bell("bell-dairy", press, ts=pressed)
    bought = probe.pos_item(line, category="infant-formula", shopper="app-loyal")
    probe.pos_item(line, category="infant-formula", shopper="app-loyal", ts=bought)
    probe.sync()

    pages = probe.messages(probe.is_alert())
    assert len(pages) == 1, [p.payload for p in pages]
    assert pages[0].json()["step"] == 1 and pages[0].json()["rule"] == "service-bell"
    offers = probe.messages(probe.is_offer("app-loyal"))
    assert len(offers) == 1, [o.payload for o in offers]
    assert offers[0].json()["rule"] == "formula-to-babyfood"
    dupes = probe.messages(probe.is_deadletter("duplicate"))
    assert sorted(d.json()["topic"] for d in dupes) == sorted(
        [probe.topic("bell/bell-dairy"), probe.topic("pos/pos-1")]
    )
    raws = sorted(str(d.json()["raw"]) for d in dupes)
    assert press in raws[0] + raws[1] and line in raws[0] + raws[1]
    assert len(probe.messages(probe.is_deadletter())) == 2


def test_bad_input_is_dead_lettered_and_the_next_message_still_works(
    tmp_path: Path, probe: Probe, start_edge: StartEdge
) -> None:
    files = write_store(tmp_path, rules={"bell": bell_rule()})
    runner = start_edge(files, metrics_port=0)
    place_staff(probe, {"band-07": "b-dairy"})

    probe.publish("bell/bell-dairy", b"not json")
    press = token("press")
    probe.bell("bell-dairy", press)
    page = probe.wait_for(probe.is_alert("band-07"), 5.0, "the alert after a malformed message")
    assert page.json()["rule"] == "test-bell"
    bad = probe.wait_for(probe.is_deadletter("malformed_json"), 5.0, "malformed_json").json()
    assert bad["raw"] == "not json"
    assert bad["topic"] == probe.topic("bell/bell-dairy")
    assert isinstance(bad["ts"], float) and abs(bad["ts"] - time.time()) < 30

    probe.bell("bell-nowhere", token("press"))
    unknown = probe.wait_for(probe.is_deadletter("unknown_device"), 5.0, "unknown_device").json()
    assert unknown["topic"] == probe.topic("bell/bell-nowhere")

    huge = b'{"id": "big", "ts": 1795395600.0, "pad": "' + b"x" * 300_000 + b'"}'
    probe.publish("bell/bell-appl", huge)
    big = probe.wait_for(probe.is_deadletter("too_large"), 5.0, "too_large").json()
    assert big["topic"] == probe.topic("bell/bell-appl")
    assert huge.decode().startswith(str(big["raw"])) and len(str(big["raw"])) > 0

    # And the engine still works after all of it.
    probe.bell("bell-appl", token("press"))
    probe.wait_count(probe.is_alert(), 2, 5.0, "an alert after the bad input")
    assert runner.metrics_port is not None
    for reason in ("malformed_json", "unknown_device", "too_large"):
        wait_metric(runner.metrics_port, "floorwalker_deadletters_total", 1, reason=reason)


BROKEN_RULE = "id: snack-offer\nwhen:\n  pos_item: {category: snacks}\noffer:\n  id: [oops\n"
SNACK_RULE = (
    "id: snack-offer\n"
    "when:\n  pos_item: {category: snacks}\n"
    "offer:\n  id: snack-10\n  message: 10% off snacks.\n  expires: 1h\n"
)


def test_hot_reload_refuses_a_broken_rule_and_takes_a_fixed_one(
    tmp_path: Path, probe: Probe, start_edge: StartEdge
) -> None:
    files = write_store(tmp_path, rules={"bell": bell_rule()})
    runner = start_edge(files, metrics_port=0, reload_poll_s=0.2)
    assert runner.metrics_port is not None
    port = runner.metrics_port
    place_staff(probe, {"band-07": "b-dairy", "band-08": "b-cosm"})

    broken = files.rules / "snack-offer.yaml"
    broken.write_text(BROKEN_RULE, encoding="utf-8")
    wait_metric(port, "floorwalker_rule_reloads_total", 1, outcome="refused")
    assert metric(scrape(port), "floorwalker_rule_reloads_total", outcome="ok") == 0

    # The running rules keep running; the broken one never took effect.
    probe.pos_item(token("line"), category="snacks", shopper="app-loyal")
    probe.bell("bell-dairy", token("press"))
    page = probe.wait_for(probe.is_alert(), 5.0, "an alert under the running rules")
    assert page.json()["rule"] == "test-bell"
    probe.sync()
    assert probe.messages(probe.is_offer()) == []

    broken.write_text(SNACK_RULE, encoding="utf-8")
    wait_metric(port, "floorwalker_rule_reloads_total", 1, outcome="ok")
    probe.pos_item(token("line"), category="snacks", shopper="app-loyal")
    offer = probe.wait_for(probe.is_offer("app-loyal"), 5.0, "the new rule's coupon").json()
    assert offer["rule"] == "snack-offer" and offer["offer"] == "snack-10"
    # The old rules are still there too.
    probe.bell("bell-appl", token("press"))
    probe.wait_count(probe.is_alert(), 2, 5.0, "a second alert after the reload")
