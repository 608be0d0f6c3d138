"""``floorwalker bench accuracy``: scores in range, and perfect on a clean signal."""

from __future__ import annotations

from pathlib import Path

import orjson

from floorwalker.simulators.bench import accuracy as bench_accuracy
from floorwalker.simulators.bench.accuracy import AccuracySettings, run_accuracy_bench, score_dwell
from floorwalker.simulators.store import Interval, Truth
from floorwalker.simulators.traffic import TrafficSettings


def test_tiny_run_has_the_expected_keys() -> None:
    cfg = AccuracySettings(
        sigmas=(6.0,),
        shoppers=30,
        minutes=3.0,
        thresholds=(5.0, 10.0),
        band_every=(2.0, 10.0),
        routing_sigmas=(4.0,),
        bell_round_s=10.0,
    )
    r = run_accuracy_bench(cfg)
    (run,) = r["runs"]
    d = run["dwell"]
    for key in ("precision", "recall", "fires", "true", "short", "duplicate", "phantom"):
        assert key in d
    assert 0.0 <= d["precision"] <= 1.0 and 0.0 <= d["recall"] <= 1.0
    assert set(d["fire_error_s"]) >= {"mean", "p50", "p95"}
    assert [row["threshold_s"] for row in d["by_threshold"]] == [5.0, 10.0]
    assert [(g["band_every_s"], g["sigma_db"]) for g in r["routing"]] == [(2.0, 4.0), (10.0, 4.0)]
    for g in r["routing"]:
        assert 0.0 <= g["in_zone_or_adjacent_share"] <= 1.0
        assert g["alerts"] == g["in_zone"] + g["adjacent"] + g["elsewhere"] + g["unplaced"]
        f = g["first_step"]
        assert f["step1"] > 10  # the bells pressed in turn
        assert f["step1"] == f["hit"] + sum(f[k] for k in bench_accuracy.MISSES)
        assert f["scored"] == f["step1"] - f["no_band"]
        assert f["hit_rate"] is None or 0.0 <= f["hit_rate"] <= 1.0
    assert r["targets"]["precision"]["target"] == 0.98
    assert r["targets"]["fire_time"]["runs"][0]["sigma_db"] == 6.0
    assert len(r["targets"]["routing"]["runs"]) == 2
    report = bench_accuracy.format_report(r)
    assert "hit rate" in report and "fire-time error p95" in report
    orjson.dumps(r)


def test_clean_signal_is_perfect() -> None:
    """No noise, no losses, no neighbour sightings, every stay well over the threshold."""
    clean = TrafficSettings(
        miss_share=0.0, neighbour_share=0.0, min_dwell_s=15.0, transit_mean_s=5.0
    )
    cfg = AccuracySettings(
        sigmas=(0.0,), shoppers=25, minutes=3.0, thresholds=(5.0,), traffic=clean, routing=False
    )
    d = run_accuracy_bench(cfg)["runs"][0]["dwell"]
    assert d["true"] > 50
    assert d["precision"] == 1.0 and d["recall"] == 1.0
    assert d["fire_error_s"]["p95"] is not None and abs(d["fire_error_s"]["p95"]) < 1.0


def test_matching_rule() -> None:
    truth = [Truth("s001", "a", False, (Interval("z", 100.0, 120.0), Interval("y", 120.0, 128.0)))]
    fires = {
        ("a", "z", 10.0): [110.4, 115.0],  # a match, then a duplicate within the same dwell
        ("a", "y", 10.0): [130.0],  # 8 s in y: a stay just short of the threshold
        ("a", "x", 10.0): [200.0],  # never in x
    }
    d = score_dwell(truth, fires, (10.0,), 5.0)
    assert (d["matched"], d["duplicate"], d["short"], d["phantom"]) == (1, 1, 1, 1)
    assert d["precision"] == 0.25 and d["recall"] == 1.0
    assert d["fire_error_s"]["mean"] == 0.4


def test_cli_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "acc.json"
    code = bench_accuracy.main(
        ["--sigmas", "4", "--shoppers", "15", "--minutes", "2", "--thresholds", "10",
         "--no-routing", "--quiet", "--json", str(out), "--dwell-grace-s", "1.5"]
    )  # fmt: skip
    assert code == 0
    data = orjson.loads(out.read_bytes())
    assert data["settings"]["presence"]["dwell_grace_s"] == 1.5


def test_per_band_cadence_and_bell_round() -> None:
    """A band's own report interval thins its sightings; bells ring in turn."""
    from floorwalker.devices.events import BellPress, Sighting  # noqa: PLC0415
    from floorwalker.simulators.store import LARGE_REGISTRY  # noqa: PLC0415
    from floorwalker.simulators.traffic import generate, load_layout  # noqa: PLC0415

    layout = load_layout(LARGE_REGISTRY)
    bands = sorted(layout.registry.staff)
    slow, fast = bands[0], bands[1]
    cfg = TrafficSettings(
        shoppers=5, minutes=5.0, staff_report_every={slow: 10.0}, bell_round_s=20.0
    )
    events = generate(layout, cfg).event_list()
    seen = {b: sum(1 for e in events if type(e) is Sighting and e.subject == b) for b in bands}
    assert seen[fast] > 3 * seen[slow] > 0
    bells = [e.bell for e in events if type(e) is BellPress]
    assert len(bells) >= 5 and len(set(bells[:5])) == 5


def test_late_firings_are_broken_down_by_cause() -> None:
    cfg = AccuracySettings(
        sigmas=(6.0,), shoppers=60, minutes=4.0, thresholds=(5.0, 10.0), routing=False
    )
    d = run_accuracy_bench(cfg)["runs"][0]["dwell"]
    late = d["late"]
    assert late["late_s"] == 1.0
    assert set(late) == {"late_s", *bench_accuracy.LATE_CAUSES}
    assert 0 < sum(late[c] for c in bench_accuracy.LATE_CAUSES) < d["matched"]
