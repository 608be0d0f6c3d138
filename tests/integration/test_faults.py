"""``floorwalker faults --quick``, one scenario per test, each with its own services.

Every scenario starts its own Mosquitto (the generated identities and ACLs,
persistence on), Redis (with an append-only file) and ``floorwalker run``
processes, so pausing or killing them here touches nothing else of the
session. Each test runs the real command and checks the scenario's JSON:
its own verdict, and the numbers that make that verdict mean something.
Measured values are printed (``pytest -s``) for docs/reliability.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from floorwalker.simulators.faults import NAMES

pytestmark = pytest.mark.integration


def run_scenario(name: str, tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "faults.json"
    argv = [sys.executable, "-c", "import sys; from floorwalker.cli import main; sys.exit(main())"]
    argv += ["faults", "--quick", "--only", name, "--json", str(out), "--workdir", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=280, check=False)
    print(done.stdout)
    why = f"{done.stdout}\n{done.stderr[-3000:]}"
    assert out.exists(), f"no result from `floorwalker faults`:\n{why}"
    (result,) = orjson.loads(out.read_bytes())["results"]
    assert result["ok"], f"{result['problems']}\n{why}"
    assert done.returncode == 0
    assert result["lost"] == 0 and result["doubled"] == 0
    return dict(result)


def test_overload_is_accounted_for_to_the_message_in_bounded_memory(tmp_path: Path) -> None:
    """3x what the runner sustains: processed + dead-lettered + shed = offered, exactly."""
    r = run_scenario("overload", tmp_path)
    notes = r["notes"]
    assert r["offered"] == r["processed"] + r["deadlettered"] + r["shed"]
    assert r["processed"] > 0 and r["deadlettered"] > 0 and r["shed"] > 0, "every outcome occurs"
    assert notes["overload_ratio"] >= 2.0, notes
    rss = notes["rss_mb"]
    assert rss["peak"] - rss["baseline"] <= 64, rss
    assert rss["after"] - rss["baseline"] <= 32, rss


@pytest.mark.parametrize("name", ["redis-pause", "redis-stop"])
def test_alerts_stay_on_time_and_offers_fail_closed_while_redis_is_away(
    name: str, tmp_path: Path
) -> None:
    """About 50 presses during the fault: step-1 alerts at p99 < 100 ms of the press."""
    r = run_scenario(name, tmp_path)
    notes = r["notes"]
    assert r["offered"] >= 50 and r["processed"] == r["offered"]
    assert r["latency_ms"]["p99"] < 100.0, r["latency_ms"]
    assert notes["offers_during_fault"] == 0 and notes["offers_refused"] >= 1
    assert notes["circuit_trips"] >= 1, "the breaker opened"
    assert notes["coupon_after_recovery"] and notes["journal_caught_up"], "no restart needed"


def test_an_escalation_due_while_the_broker_is_down_arrives_once(tmp_path: Path) -> None:
    r = run_scenario("broker-restart", tmp_path)
    assert r["notes"]["steps"] == {"1": 1, "2": 1}
    assert r["notes"]["inbound_lost"] == 0
    assert r["redelivered"] == 0, "the subscriber saw no delivery twice"


def test_a_step_the_broker_never_confirmed_is_sent_once_after_kill_9(tmp_path: Path) -> None:
    r = run_scenario("engine-restart", tmp_path)
    assert r["notes"]["steps"] == {"1": 1, "2": 1}
    assert r["notes"]["outbox_resent"] >= 1, "it came from the outbox"
    assert r["redelivered"] == 0


def test_kill_9_under_load_loses_and_doubles_nothing(tmp_path: Path) -> None:
    r = run_scenario("kill9", tmp_path)
    assert r["notes"]["kills"] == 3 and r["notes"]["starts"] == 4
    assert r["notes"]["presses"] > 0 and r["notes"]["markers"] > 0 and r["notes"]["dwellers"] > 0
    assert r["processed"] + r["deadlettered"] == r["offered"]


def test_two_runners_spend_one_budget_exactly(tmp_path: Path) -> None:
    r = run_scenario("budget", tmp_path)
    notes = r["notes"]
    assert notes["sent"] == notes["budget"] == notes["issued_in_redis"]


def test_forged_and_eavesdropping_clients_get_nothing(tmp_path: Path) -> None:
    r = run_scenario("forged", tmp_path)
    assert r["notes"]["leaks"] == [] and r["notes"]["refused"] == r["notes"]["tried"] >= 9


def test_every_scenario_has_a_test() -> None:
    covered = {"overload", "redis-pause", "redis-stop", "broker-restart", "engine-restart"}
    covered |= {"kill9", "budget", "forged"}
    assert covered == set(NAMES)
