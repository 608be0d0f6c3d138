"""Node-RED, installed by the bench from npm, runs the dwell-and-bell flow on a real Mosquitto.

The first run installs the pinned Node-RED into the checkout's ``.cache/nodered``
(about 30 s, needs the npm registry); later runs find it there.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from floorwalker.devices.topics import ack_topic, action_filters, beacon_topic, bell_topic
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.mqtt import MqttClient
from floorwalker.simulators.bench import nodered

pytestmark = pytest.mark.integration


def test_install_is_cached_and_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    red = nodered.install()
    assert red.is_file()
    assert nodered.installed_version(nodered.default_dir()) == nodered.VERSION

    def no_npm(name: str) -> str:
        raise AssertionError(f"{name} run again for an installed Node-RED")

    monkeypatch.setattr(nodered, "_tool", no_npm)
    assert nodered.install() == red  # found in the cache, npm not run


def test_flow_pages_escalates_closes_and_offers_after_a_dwell(
    tester: BrokerAddress, unique_prefix: str, tmp_path: Path
) -> None:
    assert tester.username is not None and tester.password is not None
    cfg = nodered.FlowConfig(
        host=tester.host,
        port=tester.port,
        username=tester.username,
        password=tester.password,
        prefix=unique_prefix,
        client_id=f"{unique_prefix}-nr",
        store="s001",
        beacon_zone={"b-dwell": "dwell-zone", "b-other": "aisle"},
        bell_zone={"bell-1": "aisle"},
        bands=("band-1", "band-2"),
        dwell_zones=("dwell-zone",),
        dwell_s=0.5,
        escalate_s=0.5,
    )
    got: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()

    def on_message(topic: str, payload: bytes) -> None:
        with lock:
            got.append((topic, orjson.loads(payload)))

    def wait_for(n: int) -> list[tuple[str, dict[str, Any]]]:
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            with lock:
                if len(got) >= n:
                    return list(got)
            time.sleep(0.02)
        with lock:
            return list(got)

    filters = action_filters(prefix=unique_prefix, store="s001")
    client = MqttClient(
        f"{unique_prefix}-probe", tester, subscriptions=filters, on_message=on_message
    )
    with nodered.NodeRed(nodered.install(), cfg, tmp_path / "nr") as nr, client:
        assert (tmp_path / "nr" / "flows_cred.json").stat().st_mode & 0o077 == 0
        assert tester.password not in nr.log_tail(200)
        time.sleep(0.5)  # the flow subscribes right after it connects
        press_ts = time.time()
        client.publish(
            bell_topic("s001", "bell-1", prefix=unique_prefix),
            orjson.dumps({"id": "press-1", "ts": press_ts}),
        )
        first, second = wait_for(2)[:2]
        assert first[0].endswith("/band/band-2/alert")
        assert first[1]["step"] == 1 and first[1]["ts"] == press_ts
        assert second[0].endswith("/band/band-1/alert")
        assert second[1]["step"] == 2 and second[1]["ts"] == press_ts + 0.5
        assert second[1]["id"] == first[1]["id"]
        # an answered alert does not escalate
        client.publish(
            bell_topic("s001", "bell-1", prefix=unique_prefix),
            orjson.dumps({"id": "press-2", "ts": time.time()}),
        )
        third = wait_for(3)[2]
        client.publish(
            ack_topic("s001", "band-1", prefix=unique_prefix),
            orjson.dumps(
                {"id": "a1", "ts": time.time(), "alert": third[1]["id"], "action": "done"}
            ),
        )
        seen_ts = time.time()
        batch = [
            {"ts": seen_ts, "beacon": "b-other", "rssi": -60, "shopper": "app-2"},
            {"ts": seen_ts, "beacon": "b-dwell", "rssi": -60, "shopper": "app-1"},
        ]
        client.publish(beacon_topic("s001", "gw-1", prefix=unique_prefix), orjson.dumps(batch))
        fourth = wait_for(4)[3]
        assert fourth[0].endswith("/shopper/app-1/offer")
        assert fourth[1]["ts"] == seen_ts + 0.5
        time.sleep(1.0)
        with lock:
            assert len(got) == 4  # press-2 was answered: no step 2
        stats = nr.stats()
    assert stats["events"] == 2 + 1 + 2  # two presses, one answer, two sightings
    assert stats["open_alerts"] == 1  # press-1's, never answered
