"""Debian's Prometheus scrapes a live runner, and every query of the Grafana dashboard
returns data.

The runner runs on the session's Mosquitto and Redis with traffic that makes every
series the dashboard reads exist: a dwell offer (a timer), a shopper without consent
(a suppression), bell pages that escalate and are answered within target, a redeemed
coupon and a malformed message (a dead letter).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from floorwalker import services
from tests.dashboards.test_grafana import PROMETHEUS, Query, dashboard_queries
from tests.engine.conftest import STORE
from tests.integration.conftest import (
    Lingering,
    Probe,
    StartEdge,
    bell_rule,
    dwell_rule,
    load_profiles,
    place_staff,
    token,
    write_store,
)

pytestmark = pytest.mark.integration

STORE_ID = str(STORE["store"])
SCRAPE_S = 1.0
FAST_BELL = bell_rule("fast-bell", escalate=[("1s", "next")]) + "  response_target: 2m\n"


def _api(prom: services.RunningService, path: str, **params: str) -> Any:
    url = f"{prom.url}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        doc = json.loads(resp.read())
    assert doc["status"] == "success", doc
    return doc["data"]


def _query(prom: services.RunningService, promql: str) -> list[Any]:
    data = _api(prom, "/api/v1/query", query=promql)
    result: list[Any] = data["result"]
    return result


def _wait_for(prom: services.RunningService, promql: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not _query(prom, promql):
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus never had {promql}")
        time.sleep(0.5)


def _traffic(probe: Probe) -> None:
    where = {"band-07": "b-dairy", "band-08": "b-coffee"}
    place_staff(probe, where)
    with Lingering(probe) as crowd:
        for band, beacon in where.items():
            crowd.add(band, beacon, staff=True, rssi=-55)
        crowd.add("app-loyal", "b-dairy")
        crowd.add("app-nocons", "b-dairy")
        offer = probe.wait_for(probe.is_offer("app-loyal"), 10.0, "the dwell offer").json()
        probe.bell("bell-dairy", token("press"))
        page = probe.wait_for(probe.is_alert(), 3.0, "the page").json()
        probe.wait_for(
            lambda m: probe.is_alert(alert=page["id"])(m) and m.json()["step"] == 2,
            4.0,
            "the escalation",
        )
        probe.ack("band-07", page["id"])
        probe.publish(
            "pos/pos-1",
            {
                "id": token("line"),
                "ts": time.time(),
                "receipt": "r-9",
                "coupon": offer["code"],
                "shopper": "app-loyal",
            },
        )
        probe.publish("beacon/gw-1", b"{not json")
        probe.sync()


def test_every_query_of_the_dashboard_returns_data(
    tmp_path: Path,
    probe: Probe,
    start_edge: StartEdge,
    redis_service: services.RunningService,
) -> None:
    # A budget, so that the budget panel has a rule to show once its gauges exist.
    budget = "  per_shopper: []\n  budget: {coupons: 100, amount: 50}\n"
    rules = {"dwell": dwell_rule(limits=budget), "bell": FAST_BELL}
    files = write_store(tmp_path, rules=rules)
    load_profiles(redis_service.url, files, probe.prefix)
    runner = start_edge(files, redis=redis_service.url, metrics_port=0)
    assert runner.metrics_port
    shipped = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    settings = services.PrometheusSettings(
        targets=(f"127.0.0.1:{runner.metrics_port}",), scrape_interval_s=SCRAPE_S, config=shipped
    )
    with services.prometheus(settings, tmp_path / "prometheus") as prom:
        _wait_for(prom, 'up{job="floorwalker"} == 1')
        _traffic(probe)
        # Every series the traffic made, seen in at least a few scrapes (rate() needs two).
        _wait_for(prom, f'floorwalker_coupons_redeemed_total{{store="{STORE_ID}"}}')
        _wait_for(
            prom, f'count_over_time(floorwalker_deadletters_total{{store="{STORE_ID}"}}[1m]) >= 3'
        )
        if not any(q.pending() for q in dashboard_queries()):  # the budget gauges exist
            _wait_for(prom, f'floorwalker_budget_remaining{{store="{STORE_ID}"}}')

        stores = _api(
            prom, "/api/v1/label/store/values", **{"match[]": "floorwalker_events_in_total"}
        )
        assert STORE_ID in stores, "the dashboard's $store variable lists the store"

        empty: list[str] = []
        pending: list[Query] = []
        checked = 0
        for query in dashboard_queries():
            promql = query.promql(STORE_ID)
            result = _query(prom, promql)  # a syntax error fails here, pending or not
            if query.pending():
                pending.append(query)
                continue
            checked += 1
            if not result:
                empty.append(f"{query}: {promql}")
        assert not empty, "queries without data:\n" + "\n".join(empty)
        assert checked >= 25
        # The budget panel's queries become strict once the budget gauges exist.
        assert all(
            q.metrics & {"floorwalker_budget_remaining", "floorwalker_budget_used"} for q in pending
        )
