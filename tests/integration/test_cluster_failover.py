"""Failover of the cluster runner: ``kill -9`` of the worker that owns a store.

Live: the session's Mosquitto (authentication on) and Redis, a tansu broker, the
bridge and two wall-clock workers, all real processes. A bell's escalation and a
shopper's dwell are pending in the store when its owner is killed; the other
worker takes the partition over, restores the store from the state table,
re-processes the records since the checkpoint and fires the timers: each
escalation step reaches the bands once, within 3 s of its due time, and the dwell
coupon reaches the phone once. Nothing lost, nothing doubled.

Settings (the workers' defaults, chosen for tansu): session timeout 6 s,
heartbeat 0.5 s, fetch wait 20 ms, checkpoint every 1 s.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from floorwalker import services
from floorwalker.engine.runners.cluster.kafka import partition_of
from floorwalker.engine.runners.cluster.launch import Child, Cluster, children, wait_shared
from floorwalker.engine.runners.cluster.tansu import tansu
from tests.conftest import SessionBroker
from tests.integration.conftest import (
    PERMISSIVE_POLICY,
    STORE_ID,
    Lingering,
    Match,
    Probe,
    Received,
    bell_rule,
    dwell_rule,
    load_profiles,
    place_staff,
    token,
    write_store,
)

pytestmark = pytest.mark.integration

PARTITIONS = 4
STEP_2_AFTER_S = 18.0
STEP_3_AFTER_S = 26.0
DWELL_S = 22.0
ON_TIME_S = 3.0


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[str]:
    with tansu(tmp_path / "tansu.log") as address:
        yield address


def _page(probe: Probe, alert: str, step: int) -> Match:
    def match(m: Received) -> bool:
        return probe.is_alert(alert=alert)(m) and m.json()["step"] == step

    return match


def _alert_key(probe: Probe) -> Counter[tuple[str, str, int]]:
    return Counter(
        (m.topic, str(m.json()["id"]), int(m.json()["step"]))
        for m in probe.messages(probe.is_alert())
    )


def test_kill_9_of_the_owner_moves_the_store_and_its_timers(
    tmp_path: Path,
    kafka: str,
    probe: Probe,
    session_broker: SessionBroker,
    redis_service: services.RunningService,
    unique_prefix: str,
) -> None:
    escalate = [(f"{STEP_2_AFTER_S:g}s", "next"), (f"{STEP_3_AFTER_S:g}s", "{role: manager}")]
    files = write_store(
        tmp_path,
        rules={
            "bell": bell_rule(escalate=escalate),
            "dwell": dwell_rule(at_least=f"{DWELL_S:g}s"),
        },
        policy=PERMISSIVE_POLICY,
    )
    load_profiles(redis_service.url, files, unique_prefix)
    cluster = Cluster(
        kafka=kafka,
        registries=(files.registry,),
        rules=files.rules,
        workdir=tmp_path,
        prefix=unique_prefix,
        partitions=PARTITIONS,
        redis=redis_service.url,
        redis_prefix=f"{unique_prefix}:",
    )
    engine = session_broker.address("engine")
    with children() as started:
        bridge = Child(
            "bridge",
            cluster.bridge_argv(engine, f"{unique_prefix}-bridge"),
            tmp_path / "bridge.log",
        )
        workers = [
            Child(name, cluster.worker_argv(name), tmp_path / f"{name}.log")
            for name in ("w0", "w1")
        ]
        for child in [bridge, *workers]:
            started.append(child.start())
        owned = wait_shared(workers, PARTITIONS, timeout_s=60)
        probe.sync(timeout=30)
        mine = partition_of(STORE_ID, PARTITIONS)
        owner = next(w for w in workers if mine in owned[w.name])
        other = next(w for w in workers if w is not owner)

        where = {"band-08": "b-dairy", "band-07": "b-coffee", "band-01": "b-back"}
        place_staff(probe, where)
        with Lingering(probe) as crowd:
            for band, beacon in where.items():
                crowd.add(band, beacon, staff=True, rssi=-55)
            crowd.add("app-loyal", "b-dairy")
            first_seen = crowd.wait_first("app-loyal")
            probe.sync()
            pressed = probe.bell("bell-dairy", token("press"))
            page = probe.wait_for(probe.is_alert(), 5.0, "the step 1 page")
            alert_id = page.json()["id"]
            time.sleep(1.6)  # one checkpoint (every 1 s) holds the alert and the shopper
            owner.kill9()
            killed = time.time()

            steps: dict[int, float] = {}
            for step, after in ((2, STEP_2_AFTER_S), (3, STEP_3_AFTER_S)):
                due = pressed + after
                got = probe.wait_for(
                    _page(probe, alert_id, step), due + 10.0 - time.time(), f"the step {step} page"
                )
                steps[step] = got.at - due
            coupon = probe.wait_for(probe.is_offer("app-loyal"), 10.0, "the dwell coupon")
            time.sleep(2.0)  # a duplicate would be here by now
            probe.sync()

        log = other.text()
        assert "store(s) restored" in log and mine in (other.ready_partitions() or []), log[-3000:]
        assert bridge.alive, bridge.tail()
        assert other.alive, other.tail()
    took = (coupon.at - first_seen, killed - pressed)
    print(f"coupon after {took[0]:.1f} s; kill {took[1]:.1f} s after the press; late: {steps}")
    for step, late in steps.items():
        assert -0.2 <= late <= ON_TIME_S, f"step {step} came {late:+.2f} s from its due time"
    assert coupon.json()["rule"] == "test-dwell"
    assert len(probe.messages(probe.is_offer())) == 1, "one coupon"
    alerts = _alert_key(probe)
    assert sorted(step for (_t, i, step) in alerts if i == alert_id) == [1, 2, 3], alerts
    assert max(alerts.values()) == 1, f"a page went out twice: {alerts}"
