"""bench live's verdicts, from made-up steps: every target met or not for the right reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from floorwalker.simulators.bench import live_report
from floorwalker.simulators.bench.live import kept_up
from floorwalker.simulators.bench.live_measure import latency, slope
from floorwalker.simulators.bench.live_plots import write_plots


def _lat(p50: float | None, p99: float | None, n: int = 100) -> dict[str, Any]:
    return {"p50_ms": p50, "p99_ms": p99, "p999_ms": p99, "n": n if p50 else 0, "max_ms": p99}


def _step(
    rate: int,
    p50: float,
    p99: float,
    *,
    achieved: float | None = None,
    ok: bool = True,
    series: str = "single",
    timer_p99: float | None = None,
) -> dict[str, Any]:
    timers = _lat(1.0 if timer_p99 else None, timer_p99)
    return {
        "series": series,
        "offered_rate": rate,
        "achieved_rate": achieved if achieved is not None else float(rate),
        "kept_up": ok,
        "latency_ms": _lat(p50, p99),
        "timer_lateness_ms": timers,
        "escalation_lateness_ms": timers,
        "dwell_lateness_ms": timers,
    }


def _report(**targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"targets": targets, "calibration": []}


def test_latency_targets_are_differences_from_the_floor_in_the_same_run() -> None:
    floor = [_step(1000, 0.5, 1.0), _step(5000, 0.7, 1.5), _step(10000, 0.8, 2.0)]
    fw = [
        _step(1000, 0.7, 1.9, timer_p99=2.0),
        _step(5000, 1.1, 2.0, timer_p99=6.0),  # p50 0.4 ms over the floor's
        _step(10000, 0.9, 3.5),  # p99 1.5 ms over
    ]
    v = live_report.summary(_report(floor=floor, floorwalker=fw))["verdicts"]
    assert v["latency_at_1000"]["met"] is True
    assert v["latency_at_5000"]["met"] is False
    assert v["latency_at_5000"]["p50_extra_ms"] == 0.4
    assert v["latency_at_10000"]["met"] is False
    assert v["latency_at_10000"]["p99_extra_ms"] == 1.5
    assert v["timer_lateness"]["met"] is False
    assert v["timer_lateness"]["p99_ms"] == 6.0


def test_a_step_that_did_not_keep_up_meets_no_latency_target() -> None:
    floor = [_step(1000, 0.5, 1.0)]
    fw = [_step(1000, 0.5, 1.0, ok=False)]
    v = live_report.summary(_report(floor=floor, floorwalker=fw))["verdicts"]
    assert v["latency_at_1000"]["met"] is False
    assert v["latency_at_1000"]["both_kept_up"] is False


def test_throughput_is_the_ratio_of_maximum_processing_rates() -> None:
    floor = [_step(10000, 1, 2), _step(40000, 1, 2, achieved=38000.0, ok=False)]
    fw = [_step(10000, 1, 2), _step(40000, 1, 2, achieved=29000.0, ok=False)]
    v = live_report.summary(_report(floor=floor, floorwalker=fw))["verdicts"]["throughput"]
    assert v["ratio"] == round(29000 / 38000, 3)
    assert v["met"] is False  # 0.76 < 0.8
    assert v["floor_highest_kept_up"] == 10000


def test_floorwalker_must_beat_node_red_and_outlast_it() -> None:
    fw = [_step(1000, 1, 2), _step(5000, 1, 3), _step(20000, 1, 4), _step(30000, 1, 9, ok=False)]
    nr = [_step(1000, 1, 3), _step(5000, 1, 4), _step(20000, 50, 900, ok=False)]
    v = live_report.summary(_report(floorwalker=fw, nodered=nr))["verdicts"]["vs_nodered"]
    assert v["met"] is True
    assert v["nodered_highest_kept_up"] == 5000
    assert v["floorwalker_kept_up_past_it"] == [20000]
    slower = [_step(1000, 1, 2), _step(5000, 1, 5), _step(20000, 1, 4)]
    v = live_report.summary(_report(floorwalker=slower, nodered=nr))["verdicts"]["vs_nodered"]
    assert v["met"] is False  # 5 ms vs Node-RED's 4 ms at 5k/s
    unsaturated = [_step(1000, 1, 3), _step(5000, 1, 4)]
    v = live_report.summary(_report(floorwalker=fw, nodered=unsaturated))["verdicts"]
    assert v["vs_nodered"]["met"] is False  # Node-RED never saturated: "past it" unknown


def test_the_instrument_must_sustain_twice_the_top_rate() -> None:
    row = {
        "series": "single",
        "offered_rate": 80000,
        "top_rate_tested": 40000,
        "generator": {"event_rate": 61000.0, "acked": 300000, "sent": 300000},
        "cpu_pct": {"generator": 40.0, "broker": 99.0},
        "sustained": False,
    }
    r = {"targets": {}, "calibration": [row]}
    v = live_report.summary(r)["verdicts"]["instrument"]
    assert v["met"] is False
    assert v["by_series"]["single"]["reached"] == 61000.0


def test_kept_up_needs_rate_no_loss_and_every_press_answered() -> None:
    step = {
        "offered_rate": 1000,
        "achieved_rate": 1010.0,
        "seconds": 10.0,
        "lost": 0,
        "probe": {"presses": 200},
        "alerts": {"step1": 200, "expected": 200},
    }
    assert kept_up(step)
    assert not kept_up({**step, "lost": 1})
    assert not kept_up({**step, "achieved_rate": 900.0})
    assert not kept_up({**step, "alerts": {"step1": 199, "expected": 200}})


def test_latency_and_slope_helpers() -> None:
    lat = latency([0.001] * 99 + [0.010])
    assert lat["p50_ms"] == 1.0
    assert lat["n"] == 100
    assert lat["max_ms"] == 10.0
    assert latency([])["p99_ms"] is None
    samples = [(t / 4, int(1000 * t / 4)) for t in range(41)]
    rate = slope(samples, 1.0, 9.0)
    assert rate is not None
    assert abs(rate - 1000.0) < 1.0


def test_format_report_and_plots_from_a_saved_run(tmp_path: Path) -> None:
    floor = [_step(1000, 0.5, 1.0), _step(5000, 0.6, 1.2, series="batch20")]
    fw = [_step(1000, 0.7, 1.5, timer_p99=2.0), _step(5000, 0.9, 2.0, series="batch20")]
    for s in floor + fw:
        s.update(
            offered_msg_rate=s["offered_rate"],
            lost=0,
            generator={"event_rate": float(s["offered_rate"])},
            alerts={"step1": 1, "expected": 1, "step2": 0, "escalations_expected": 0, "offers": 0},
            cpu_pct={},
        )
    r = _report(floor=floor, floorwalker=fw)
    r["summary"] = live_report.summary(r)
    text = live_report.format_report(r)
    assert "latency_at_1000: MET" in text
    assert "| floorwalker | batch20 | 5,000 |" in text
    paths = write_plots(r, tmp_path)
    assert sorted(p.name for p in paths) == ["live-batch20.png", "live-single.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
