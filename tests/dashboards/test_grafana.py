"""dashboards/: the Grafana dashboard and the Prometheus files are well formed, and every
metric the dashboard queries is one a runner exports."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from floorwalker import services
from floorwalker.engine.runners.metrics import Metrics

ROOT = Path(__file__).parents[2]
DASHBOARDS = ROOT / "dashboards"
DASHBOARD = DASHBOARDS / "grafana" / "floorwalker.json"
PROMETHEUS = DASHBOARDS / "prometheus"
METRICS_SOURCE = ROOT / "floorwalker" / "engine" / "runners" / "metrics.py"
PENDING_METRICS = frozenset({"floorwalker_budget_remaining", "floorwalker_budget_used"})
"""Metrics a dashboard panel may name before metrics.py defines them (the budget gauges
came that way). A query of one is checked only once metrics.py defines it, and then it
must return data like every other."""
_METRIC = re.compile(r"\bfloorwalker_[a-z_]+\b")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


@dataclass(frozen=True)
class Query:
    panel: str
    ref: str
    expr: str

    @property
    def metrics(self) -> set[str]:
        return set(_METRIC.findall(self.expr))

    def pending(self) -> bool:
        """Queries a metric that metrics.py does not define yet."""
        source = METRICS_SOURCE.read_text(encoding="utf-8")
        return any(f'"{m}"' not in source for m in self.metrics & PENDING_METRICS)

    def promql(self, store: str, rate_interval: str = "30s", range_: str = "5m") -> str:
        """The query as Grafana sends it: its variables substituted."""
        text = (
            self.expr.replace("$__rate_interval", rate_interval)
            .replace("$__range", range_)
            .replace("${store}", store)
            .replace("$store", store)
        )
        assert "$" not in text, f"{self}: a variable left in {text}"
        return text

    def __str__(self) -> str:
        return f"{self.panel} [{self.ref}]"


def load_dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return doc


def _panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in doc["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows hold theirs
    return out


def dashboard_queries() -> list[Query]:
    return [
        Query(panel["title"], target["refId"], target["expr"])
        for panel in _panels(load_dashboard())
        for target in panel.get("targets", [])
    ]


def _exported() -> set[str]:
    m = Metrics()
    m.stores(["s001"])
    names = set()
    for family in text_string_to_metric_families(m.render().decode()):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def _base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_the_dashboard_is_provisionable_json() -> None:
    doc = load_dashboard()
    assert doc["uid"] == "floorwalker" and doc["title"] == "Floorwalker"
    assert isinstance(doc["schemaVersion"], int)
    panels = _panels(doc)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    names = {v["name"] for v in doc["templating"]["list"]}
    assert names == {"datasource", "store"}
    for panel in panels:
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"} and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel.get("description"), panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]


def test_the_dashboard_has_every_panel_the_issue_asks_for() -> None:
    titles = " | ".join(p["title"].lower() for p in _panels(load_dashboard()))
    for wanted in (
        "events in per second",
        "actions by rule",
        "suppressions by reason",
        "decision latency (device ts -> publish)",
        "timer lateness",
        "staff response p90 against target",
        "open alerts",
        "dead letters",
        "unhealthy devices",
        "budget remaining",
    ):
        assert wanted in titles, wanted
    heatmaps = [p for p in _panels(load_dashboard()) if p["type"] == "heatmap"]
    assert heatmaps and all(t["format"] == "heatmap" for p in heatmaps for t in p["targets"])


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    exported = _exported()
    queries = dashboard_queries()
    assert len(queries) >= 25
    for query in queries:
        assert query.metrics, f"{query} queries no floorwalker metric"
        for name in query.metrics - PENDING_METRICS:
            assert name in exported or _base(name) in exported, f"{query}: unknown {name}"


def test_store_level_queries_filter_by_the_store_variable() -> None:
    store_level = {"floorwalker_queue_depth", "floorwalker_outbox_pending"}
    store_level |= {"floorwalker_broker_reconnects_total", "floorwalker_redis_errors_total"}
    store_level |= {"floorwalker_rule_reloads_total", "floorwalker_build_info"}
    for query in dashboard_queries():
        if query.metrics <= store_level:
            continue
        for name in query.metrics:
            assert re.search(name + r'\{[^}]*store=~"\$store"', query.expr), f"{query}: {name}"


def test_substitution_leaves_no_variable() -> None:
    for query in dashboard_queries():
        text = query.promql("s001")  # asserts no `$` is left
        assert ('store=~"s001"' in text) == ("$store" in query.expr), query


def _promtool() -> str:
    return services.find_binary("promtool")


def test_the_scrape_config_and_alert_rules_pass_promtool() -> None:
    config = PROMETHEUS / "prometheus.yml"
    done = subprocess.run(
        [_promtool(), "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout + done.stderr
    doc = yaml.safe_load(config.read_text())
    (job,) = doc["scrape_configs"]
    assert job["job_name"] == "floorwalker" and job["metrics_path"] == "/metrics"


def test_the_generated_config_for_a_test_keeps_the_shipped_jobs() -> None:
    shipped = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config = services.prometheus_config(
        services.PrometheusSettings(targets=("127.0.0.1:1234",), config=shipped)
    )
    (job,) = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:1234"]}]
    assert config["global"]["scrape_interval"] == "1s"
    assert "rule_files" not in config


@pytest.mark.parametrize("name", ["floorwalker.yaml", "prometheus.yaml"])
def test_grafana_provisioning_files_are_yaml_with_api_version_1(name: str) -> None:
    found = list((DASHBOARDS / "grafana" / "provisioning").rglob(name))
    assert len(found) == 1
    doc = yaml.safe_load(found[0].read_text())
    assert doc["apiVersion"] == 1
