"""Runner metrics: EngineStats counters become Prometheus series, once each."""

from __future__ import annotations

import platform
import socket
import urllib.request
from collections import Counter

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from floorwalker.devices.registry import Registry
from floorwalker.engine.core.engine import Engine
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.engine.core.testing import T0, StoreScenario, run_events
from floorwalker.engine.runners.metrics import Metrics, build_version
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import PROFILES, STORE, place_staff

Labels = tuple[tuple[str, str], ...]

STAFF = {"band-07": "b-dairy", "band-08": "b-coffee", "band-01": "b-back"}


def samples(m: Metrics) -> dict[tuple[str, Labels], float]:
    """Parse render() back: (sample name, sorted labels) -> value."""
    out: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return samples(m).get((name, tuple(sorted(labels.items()))))


def busy_store(catalog: RuleSet) -> StoreScenario:
    """An offer, a capped repeat, a no-consent dwell, a bell answered after 20 s."""
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    place_staff(sc, STAFF, start=T0, seconds=400)
    sc.linger("app-loyal", "b-dairy", start=T0, seconds=12)
    sc.linger("app-loyal", "b-dairy", start=T0 + 100, seconds=12)  # same day: capped
    sc.linger("app-nocons", "b-dairy", start=T0, seconds=12)
    press = T0 + 10
    sc.bell(press, "bell-dairy", reason="help")
    sc.run_until(press)
    (page,) = sc.alerts("service-bell")
    sc.ack(press + 20, "band-07", page.id)
    sc.run_until(T0 + 300)
    return sc


# --------------------------------------------------------------------------- sync


def test_sync_turns_engine_counters_into_prometheus_counters(catalog: RuleSet) -> None:
    sc = busy_store(catalog)
    stats = sc.engine.stats
    # The scenario did what the assertions below rely on.
    assert stats.sent[("chilled-dwell-bogo", "offer")] == 1
    assert stats.suppressed[("chilled-dwell-bogo", "cap")] == 1

    m = Metrics()
    m.sync(sc.engine)
    got = samples(m)

    def counter(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert (
        counter("floorwalker_actions_total", store="s001", rule="chilled-dwell-bogo", type="offer")
        == 1
    )
    assert (
        counter("floorwalker_actions_total", store="s001", rule="service-bell", type="alert") == 1
    )
    assert (
        counter(
            "floorwalker_suppressed_total", store="s001", rule="chilled-dwell-bogo", reason="cap"
        )
        == 1
    )
    assert (
        counter(
            "floorwalker_suppressed_total",
            store="s001",
            rule="chilled-dwell-bogo",
            reason="no_consent",
        )
        == 1
    )
    # Every (rule, reason) the engine counted is there, with the engine's count.
    for (rule, reason), n in stats.suppressed.items():
        assert counter("floorwalker_suppressed_total", store="s001", rule=rule, reason=reason) == n
    assert counter("floorwalker_events_in_total", store="s001", kind="bell_press") == 1
    assert counter("floorwalker_events_in_total", store="s001", kind="staff_ack") == 1
    sightings = stats.events_in["Sighting"]
    assert sightings > 100
    assert counter("floorwalker_events_in_total", store="s001", kind="sighting") == sightings
    # The ack after 20 s lands in the (15, 30] bucket.
    assert (
        counter("floorwalker_staff_response_seconds_count", store="s001", rule="service-bell") == 1
    )
    assert (
        counter("floorwalker_staff_response_seconds_sum", store="s001", rule="service-bell") == 20.0
    )
    assert (
        counter(
            "floorwalker_staff_response_seconds_bucket",
            store="s001",
            rule="service-bell",
            le="15.0",
        )
        == 0
    )
    assert (
        counter(
            "floorwalker_staff_response_seconds_bucket",
            store="s001",
            rule="service-bell",
            le="30.0",
        )
        == 1
    )
    # Gauges come from the engine.
    assert sc.engine.gauges().open_alerts == 0  # acknowledged: someone is on it
    assert sc.engine.gauges().alerts["acknowledged"] == 1
    assert counter("floorwalker_alerts_open", store="s001") == 0
    assert counter("floorwalker_alerts", store="s001", state="acknowledged") == 1
    assert (
        counter("floorwalker_active_shoppers", store="s001")
        == sc.engine.gauges().active_shoppers
        > 0
    )
    assert counter("floorwalker_devices_unhealthy", store="s001") == 0


def test_sync_twice_does_not_double_count_and_adds_only_what_is_new(catalog: RuleSet) -> None:
    sc = busy_store(catalog)
    m = Metrics()
    m.sync(sc.engine)
    first = samples(m)
    m.sync(sc.engine)
    again = samples(m)
    assert {k: v for k, v in again.items() if not k[0].endswith("_created")} == {
        k: v for k, v in first.items() if not k[0].endswith("_created")
    }
    assert (
        value(m, "floorwalker_staff_response_seconds_count", store="s001", rule="service-bell") == 1
    )

    # Another capped dwell and a second, 5 s answer to a new bell.
    sc.linger("app-loyal", "b-dairy", start=T0 + 310, seconds=12)
    sc.bell(T0 + 330, "bell-dairy", reason="help")
    sc.run_until(T0 + 330)
    second = [a for a in sc.alerts("service-bell") if a.ts == T0 + 330]
    assert second
    sc.ack(T0 + 335, second[0].band, second[0].id)
    sc.run_until(T0 + 390)
    assert sc.rejections == []
    assert sc.engine.stats.suppressed[("chilled-dwell-bogo", "cap")] == 2
    m.sync(sc.engine)
    m.sync(sc.engine)
    assert (
        value(
            m, "floorwalker_suppressed_total", store="s001", rule="chilled-dwell-bogo", reason="cap"
        )
        == 2
    )
    assert (
        value(m, "floorwalker_actions_total", store="s001", rule="service-bell", type="alert") == 2
    )
    assert value(m, "floorwalker_events_in_total", store="s001", kind="bell_press") == 2
    assert (
        value(m, "floorwalker_staff_response_seconds_count", store="s001", rule="service-bell") == 2
    )
    assert (
        value(m, "floorwalker_staff_response_seconds_sum", store="s001", rule="service-bell")
        == 25.0
    )
    assert (
        value(m, "floorwalker_events_in_total", store="s001", kind="sighting")
        == (sc.engine.stats.events_in["Sighting"])
    )


def test_escalations_and_redeemed_coupons(catalog: RuleSet) -> None:
    sc = StoreScenario(catalog, STORE, profiles=PROFILES)
    place_staff(sc, STAFF, start=T0, seconds=400)
    sc.bell(T0 + 10, "bell-dairy", reason="help")  # nobody answers: two escalations
    sc.linger("app-loyal", "b-dairy", start=T0, seconds=12)
    sc.run_until(T0 + 20)
    (offer,) = sc.offers("chilled-dwell-bogo")
    sc.redeem(T0 + 30, offer.code, shopper="app-loyal")
    sc.run_until(T0 + 300)
    assert sc.engine.stats.escalations["service-bell"] == 2
    assert sc.engine.stats.redeemed["chilled-dwell-bogo"] == 1

    m = Metrics()
    m.sync(sc.engine)
    assert value(m, "floorwalker_escalations_total", store="s001", rule="service-bell") == 2
    assert (
        value(m, "floorwalker_coupons_redeemed_total", store="s001", rule="chilled-dwell-bogo") == 1
    )
    assert value(m, "floorwalker_events_in_total", store="s001", kind="coupon_redeemed") == 1
    # Nobody answered: once the chain is over the alert is unanswered, no longer open.
    assert value(m, "floorwalker_alerts_open", store="s001") == 0
    assert value(m, "floorwalker_alerts", store="s001", state="unanswered") == 1
    assert value(m, "floorwalker_alerts_unanswered_total", store="s001", rule="service-bell") == 1
    assert sum(sc.engine.stats.pages.values()) == 3  # three steps, three pages


def test_a_replaced_engine_never_makes_a_counter_go_down(catalog: RuleSet) -> None:
    old = busy_store(catalog)
    m = Metrics()
    m.sync(old.engine)
    before = old.engine.stats.events_in["Sighting"]

    # The runner rebuilt its engine: fresh stats, smaller counts.
    new = StoreScenario(catalog, STORE, profiles=PROFILES)
    new.linger("app-loyal", "b-dairy", start=T0, seconds=12)
    new.run_until(T0 + 60)
    fresh = new.engine.stats.events_in["Sighting"]
    assert 0 < fresh < before
    m.sync(new.engine)
    assert value(m, "floorwalker_events_in_total", store="s001", kind="sighting") == before + fresh
    assert (
        value(m, "floorwalker_actions_total", store="s001", rule="chilled-dwell-bogo", type="offer")
        == 2
    )
    # The old engine's service-bell answer is kept, not observed again.
    assert (
        value(m, "floorwalker_staff_response_seconds_count", store="s001", rule="service-bell") == 1
    )
    # Gauges follow the current engine.
    assert value(m, "floorwalker_alerts_open", store="s001") == new.engine.gauges().open_alerts == 0


def test_a_count_that_goes_down_in_place_starts_afresh(catalog: RuleSet) -> None:
    sc = busy_store(catalog)
    stats = sc.engine.stats_for("s001")  # the live counters, not the summed copy
    m = Metrics()
    m.sync(sc.engine)
    stats.suppressed[("chilled-dwell-bogo", "cap")] = 0  # e.g. someone reset the counter
    m.sync(sc.engine)
    assert (
        value(
            m, "floorwalker_suppressed_total", store="s001", rule="chilled-dwell-bogo", reason="cap"
        )
        == 1
    )
    stats.suppressed[("chilled-dwell-bogo", "cap")] = 3  # three new since the reset
    stats.response_s["service-bell"] = [7.0]  # the list was replaced: one new answer
    m.sync(sc.engine)
    assert (
        value(
            m, "floorwalker_suppressed_total", store="s001", rule="chilled-dwell-bogo", reason="cap"
        )
        == 4
    )
    assert (
        value(m, "floorwalker_staff_response_seconds_count", store="s001", rule="service-bell") == 2
    )
    assert (
        value(m, "floorwalker_staff_response_seconds_sum", store="s001", rule="service-bell")
        == 27.0
    )


# --------------------------------------------------------------------------- direct methods


def test_direct_methods_show_up() -> None:
    m = Metrics()
    m.deadletter("bad_json", store="s001")
    m.deadletter("bad_json", store="s001")
    m.deadletter("unknown_device", store="s001")
    m.decision_latency("arrival", 0.0003, store="s001")
    m.decision_latency("device", 0.2, store="s001")
    m.decision_latency("device", -0.05, store="s001")  # device clock ahead: counted as zero
    m.timer_lateness(0.002, store="s001")
    m.queue_depth(17)
    m.outbox_pending(3)
    m.reconnect()
    m.redis_error()
    m.redis_error()
    m.reload("ok")
    m.reload("refused")
    m.reload("ok")

    assert value(m, "floorwalker_deadletters_total", store="s001", reason="bad_json") == 2
    assert value(m, "floorwalker_deadletters_total", store="s001", reason="unknown_device") == 1
    assert value(m, "floorwalker_decision_latency_seconds_count", store="s001", path="arrival") == 1
    assert (
        value(
            m,
            "floorwalker_decision_latency_seconds_bucket",
            store="s001",
            path="arrival",
            le="0.0005",
        )
        == 1
    )
    assert value(m, "floorwalker_decision_latency_seconds_count", store="s001", path="device") == 2
    assert value(
        m, "floorwalker_decision_latency_seconds_sum", store="s001", path="device"
    ) == pytest.approx(0.2)
    assert (
        value(
            m, "floorwalker_decision_latency_seconds_bucket", store="s001", path="device", le="0.1"
        )
        == 1
    )
    assert (
        value(
            m, "floorwalker_decision_latency_seconds_bucket", store="s001", path="device", le="0.25"
        )
        == 2
    )
    assert value(m, "floorwalker_timer_lateness_seconds_bucket", store="s001", le="0.001") == 0
    assert value(m, "floorwalker_timer_lateness_seconds_bucket", store="s001", le="0.0025") == 1
    assert value(m, "floorwalker_queue_depth") == 17
    assert value(m, "floorwalker_outbox_pending") == 3
    assert value(m, "floorwalker_broker_reconnects_total") == 1
    assert value(m, "floorwalker_redis_errors_total") == 2
    assert value(m, "floorwalker_rule_reloads_total", outcome="ok") == 2
    assert value(m, "floorwalker_rule_reloads_total", outcome="refused") == 1
    m.queue_depth(0)
    assert value(m, "floorwalker_queue_depth") == 0


def test_snapshot_metrics() -> None:
    m = Metrics()
    m.snapshot_error()
    m.snapshot_seconds(0.003)
    m.snapshot_seconds(-1.0)  # a clock step back is recorded as zero
    m.snapshot_bytes("s001", 5120)
    m.snapshot_bytes("s002", 80)
    m.snapshot_bytes("s001", 4096)  # the last write's size, not a sum
    assert value(m, "floorwalker_snapshot_errors_total") == 1
    assert value(m, "floorwalker_snapshot_seconds_count") == 2
    assert value(m, "floorwalker_snapshot_seconds_bucket", le="0.0025") == 1
    assert value(m, "floorwalker_snapshot_seconds_bucket", le="0.005") == 2
    assert value(m, "floorwalker_snapshot_bytes", store="s001") == 4096
    assert value(m, "floorwalker_snapshot_bytes", store="s002") == 80


def test_label_values_are_a_fixed_set_where_the_brief_says_so() -> None:
    m = Metrics()
    with pytest.raises(ValueError, match="path"):
        m.decision_latency("publish", 0.1, store="s001")
    with pytest.raises(ValueError, match="outcome"):
        m.reload("maybe")
    # Known label values are exported at zero before anything happens.
    m.stores(["s001"])
    assert value(m, "floorwalker_rule_reloads_total", outcome="refused") == 0
    assert value(m, "floorwalker_decision_latency_seconds_count", store="s001", path="device") == 0


def test_names_types_and_help_follow_prometheus_conventions() -> None:
    families = {f.name: f for f in text_string_to_metric_families(Metrics().render().decode())}
    expected = {
        "floorwalker_events_in": "counter",
        "floorwalker_actions": "counter",
        "floorwalker_suppressed": "counter",
        "floorwalker_deadletters": "counter",
        "floorwalker_coupons_redeemed": "counter",
        "floorwalker_escalations": "counter",
        "floorwalker_redis_errors": "counter",
        "floorwalker_broker_reconnects": "counter",
        "floorwalker_rule_reloads": "counter",
        "floorwalker_snapshot_errors": "counter",
        "floorwalker_snapshot_seconds": "histogram",
        "floorwalker_snapshot_bytes": "gauge",
        "floorwalker_decision_latency_seconds": "histogram",
        "floorwalker_timer_lateness_seconds": "histogram",
        "floorwalker_staff_response_seconds": "histogram",
        "floorwalker_queue_depth": "gauge",
        "floorwalker_outbox_pending": "gauge",
        "floorwalker_alerts_open": "gauge",
        "floorwalker_active_shoppers": "gauge",
        "floorwalker_devices_unhealthy": "gauge",
    }
    for name, kind in expected.items():
        assert name in families, name
        assert families[name].type == kind, name
        assert families[name].documentation.strip(), name
    text = Metrics().render().decode()
    assert "# TYPE floorwalker_events_in_total counter" in text


def test_each_metrics_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()  # would raise "Duplicated timeseries" on a shared registry
    a.redis_error()
    assert value(a, "floorwalker_redis_errors_total") == 1
    assert value(b, "floorwalker_redis_errors_total") == 0
    assert REGISTRY.get_sample_value("floorwalker_redis_errors_total") is None


# --------------------------------------------------------------------------- exposition


def test_serve_on_port_zero_answers_get_metrics_on_loopback() -> None:
    m = Metrics()
    m.reload("ok")
    m.queue_depth(5)
    server = m.serve(0)
    try:
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            body = resp.read().decode()
    finally:
        server.close()
    assert "# HELP floorwalker_actions_total" in body
    assert "# TYPE floorwalker_decision_latency_seconds histogram" in body
    assert 'floorwalker_rule_reloads_total{outcome="ok"} 1.0' in body
    assert "floorwalker_queue_depth 5.0" in body
    # Closed means closed: the port no longer answers.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass
    server.close()  # idempotent


def test_two_servers_get_different_ports() -> None:
    m1, m2 = Metrics(), Metrics()
    m1.reconnect()
    with m1.serve(0) as s1, m2.serve(0) as s2:
        assert s1.port != s2.port
        bodies = []
        for s in (s1, s2):
            with urllib.request.urlopen(f"http://127.0.0.1:{s.port}/metrics", timeout=5) as r:
                bodies.append(r.read().decode())
    reconnects = Counter(
        line for b in bodies for line in b.splitlines() if line.startswith("floorwalker_broker_")
    )
    assert reconnects["floorwalker_broker_reconnects_total 1.0"] == 1
    assert reconnects["floorwalker_broker_reconnects_total 0.0"] == 1


# --------------------------------------------------------------------------- stores, build


def test_build_info_names_the_version_and_python() -> None:
    m = Metrics()
    got = {k: v for k, v in samples(m).items() if k[0] == "floorwalker_build_info"}
    labels = (("python", platform.python_version()), ("version", build_version()))
    assert got == {("floorwalker_build_info", labels): 1.0}
    assert build_version()[0].isdigit()


TWO_STORES = {**STORE, "store": "s002"}


def test_every_store_of_one_engine_has_its_own_series(catalog: RuleSet) -> None:
    one = StoreScenario(catalog, STORE, profiles=PROFILES)
    registries = {
        "s001": one.registry,
        "s002": Registry.from_mapping(TWO_STORES),
    }
    engine = Engine(catalog, registries, profiles=ProfileBook({p.shopper: p for p in PROFILES}))
    events = one.linger("app-loyal", "b-dairy", start=T0, seconds=12)
    other = [e._replace(store="s002") for e in events[:4]]
    run_events(engine, sorted([*events, *other], key=lambda e: e.ts), until=T0 + 60)
    m = Metrics()
    m.sync(engine)
    assert (
        value(m, "floorwalker_actions_total", store="s001", rule="chilled-dwell-bogo", type="offer")
        == 1
    )
    assert (
        value(m, "floorwalker_actions_total", store="s002", rule="chilled-dwell-bogo", type="offer")
        is None
    )
    assert value(m, "floorwalker_events_in_total", store="s001", kind="sighting") == len(events)
    assert value(m, "floorwalker_events_in_total", store="s002", kind="sighting") == len(other)
    assert value(m, "floorwalker_active_shoppers", store="s001") == 1
    assert value(m, "floorwalker_active_shoppers", store="s002") == 1
    # The engine-wide view for summaries adds the stores up.
    assert engine.stats.events_in["Sighting"] == len(events) + len(other)
    assert engine.stats.sent[("chilled-dwell-bogo", "offer")] == 1
    assert engine.stats_for("s002").sent == {}
    assert engine.gauges().active_shoppers == 2
