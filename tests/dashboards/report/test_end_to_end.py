"""Backtest end to end: closed-loop simulate -> replay -> report shows a lift with its interval.

The commands a marketer runs (README "Backtest a new rule"), as subprocesses: a
rule of the catalog given a 50 % holdout, a closed-loop capture in which shoppers
redeem what they got, its replay, and the report built from the replay's files.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import orjson

from tests.simulators.test_closed_loop import HOLDOUT_RULE, rules_with_holdout

ROOT = Path(__file__).resolve().parents[3]
REGISTRY = ROOT / "floorwalker" / "simulators" / "data" / "demo-store.yaml"


def _fw(*args: object, stdout: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, "-m", "floorwalker.cli", *map(str, args)]
    if stdout is None:
        return subprocess.run(argv, capture_output=True, check=False, timeout=240)
    with stdout.open("wb") as fh:
        return subprocess.run(argv, stdout=fh, stderr=subprocess.PIPE, check=False, timeout=240)


def backtest(tmp_path: Path) -> tuple[Path, Path]:
    """Closed-loop simulate, replay, report; the report's HTML and CSV paths."""
    rules = rules_with_holdout(tmp_path / "rules", "50%")
    capture, profiles = tmp_path / "capture.jsonl", tmp_path / "profiles.jsonl"
    sim = _fw(
        "simulate", "--registry", REGISTRY, "--shoppers", 300, "--minutes", 60, "--seed", 4,
        "--capture", capture, "--profiles-out", profiles, "--closed-loop", "--rules", rules,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr.decode()
    assert orjson.loads(sim.stdout)["redemptions"] > 0
    decisions, actions = tmp_path / "decisions.jsonl", tmp_path / "actions.jsonl"
    replay = _fw(
        "replay", "--registry", REGISTRY, "--profiles", profiles, "--rules", rules,
        "--decisions", decisions, capture, stdout=actions,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr.decode()
    html, table = tmp_path / "report.html", tmp_path / "report.csv"
    report = _fw(
        "report", "--registry", REGISTRY, "--rules", rules, "--decisions", decisions,
        "--actions", actions, "--capture", capture, "--html", html, "--csv", table,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr.decode()
    assert "1 with a holdout lift" in report.stderr.decode()
    return html, table


def test_a_backtest_shows_the_lift_and_its_interval(tmp_path: Path) -> None:
    html, table = backtest(tmp_path)
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    (row,) = [r for r in rows if r["rule"] == HOLDOUT_RULE and r["day"] == "all"]
    treated, held = int(row["treated_shoppers"]), int(row["holdout_shoppers"])
    assert treated > 10 and held > 10
    lift, low, high = float(row["lift"]), float(row["lift_ci_low"]), float(row["lift_ci_high"])
    assert -1.0 <= low < lift < high <= 1.0
    expected = int(row["treated_converted"]) / treated - int(row["holdout_converted"]) / held
    assert abs(lift - expected) < 1e-4
    assert int(row["redeemed"]) > 0 and float(row["attributed_revenue"]) > 0
    assert int(row["holdout"]) > 0 and int(row["candidates"]) >= int(row["sent"])
    # Other rules carry no holdout: no lift, but their counts are there.
    others = [r for r in rows if r["rule"] != HOLDOUT_RULE and r["day"] == "all"]
    assert others and all(r["lift"] == "" for r in others)
    page = html.read_text(encoding="utf-8")
    assert "<table id='lift'>" in page and HOLDOUT_RULE in page
    assert "<table id='rules'>" in page and "<svg" in page
    assert f"{100 * low:+.1f} pp to {100 * high:+.1f} pp" in page
