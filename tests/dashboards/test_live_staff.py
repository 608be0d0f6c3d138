"""The dashboard's staff loop: alerts by state, response vs target per rule, pages per band."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console

from floorwalker.dashboards.live import (
    MetricsReader,
    RuleResponse,
    Snapshot,
    read_registry,
    render_plain,
    render_rich,
)
from floorwalker.engine.core.engine import Gauges
from floorwalker.engine.core.stats import EngineStats
from floorwalker.engine.runners.metrics import Metrics


@dataclass
class _Engine:
    stats: EngineStats = field(default_factory=EngineStats)
    alerts: dict[str, int] = field(default_factory=dict)

    stores: dict[str, object] = field(default_factory=lambda: {"s001": None})

    def stats_for(self, store: str | None) -> EngineStats:
        return self.stats

    def gauges(self, store: str | None = None) -> Gauges:
        return Gauges(active_shoppers=3, alerts=self.alerts, pending_timers=0, unhealthy_devices=0)


def _engine() -> _Engine:
    e = _Engine(alerts={"open": 2, "acknowledged": 1, "unanswered": 4, "done": 7})
    s = e.stats
    s.sent = Counter({("service-bell", "alert"): 14, ("greet", "alert"): 4})
    s.response_s = {"service-bell": [5.0, 12.0, 14.0, 20.0, 200.0]}
    s.response_target_s = {"service-bell": 120.0}
    s.within_target = Counter({"service-bell": 4})
    s.unanswered = Counter({"service-bell": 1, "greet": 3})
    s.pages = Counter({"band-01": 11, "band-02": 5, "band-03": 2})
    return e


def test_read_registry_parses_the_staff_metrics() -> None:
    m = Metrics()
    m.sync(_engine())
    r = read_registry(m.registry)
    assert r.alerts_by_state == {"open": 2, "acknowledged": 1, "unanswered": 4, "done": 7}
    assert r.pages == {"band-01": 11, "band-02": 5, "band-03": 2}
    assert r.response_count == {"service-bell": 5}
    assert r.response_target == {"service-bell": 120.0}
    assert r.within_target == {"service-bell": 4}
    assert r.unanswered == {"service-bell": 1, "greet": 3}
    bell, greet = sorted(r.by_rule(), key=lambda x: x.rule)[::-1]
    assert bell.rule == "service-bell" and bell.answered == 5 and bell.within == 4
    assert bell.mean_s == 50.2 and bell.target_s == 120.0 and bell.within_share == 0.8
    assert bell.p50_s is not None and 5.0 <= bell.p50_s <= 30.0
    assert bell.p90_s is not None and bell.p50_s <= bell.p90_s
    assert greet == RuleResponse("greet", unanswered=3)
    snap = MetricsReader(m.registry).snapshot()
    assert snap.alerts_in("acknowledged") == 1 and snap.alerts_in("open") == 2
    assert [r.rule for r in snap.response_by_rule] == ["greet", "service-bell"]


SNAP = Snapshot(
    store="s001",
    alerts_open=2,
    alerts_by_state={"open": 2, "acknowledged": 1, "unanswered": 4, "done": 7},
    response_by_rule=(
        RuleResponse("greet", unanswered=3),
        RuleResponse("service-bell", 5, 12.0, 40.0, 50.2, 120.0, 4, 1),
    ),
    pages={"band-01": 11, "band-02": 5},
)


def test_plain_rendering_shows_states_targets_and_pages() -> None:
    text = render_plain(SNAP)
    assert "alerts open 2, acknowledged 1, unanswered 4" in text
    assert "service-bell p50 12.0 s p90 40.0 s / target 120 s, 80% within, 1 unanswered" in text
    assert "greet none answered, 3 unanswered" in text
    assert "pages per band: band-01 11, band-02 5" in text


def test_rich_rendering_shows_states_targets_and_pages() -> None:
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(render_rich(SNAP))
    text = out.getvalue()
    assert "alerts open / acked / unanswered" in text and "2 / 1 / 4" in text
    assert "Response vs target, by rule" in text
    assert "p50 12.0 s p90 40.0 s / target 120 s, 80% within" in text
    assert "Pages per band" in text and "band-01" in text


def test_an_old_snapshot_without_states_still_renders() -> None:
    text = render_plain(Snapshot(alerts_open=3))
    assert "alerts open 3, acknowledged 0, unanswered 0" in text
    assert "pages per band" not in text and "response vs target" not in text
