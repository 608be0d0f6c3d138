"""The fault suite's pieces that need no server: packets, summaries, the command's names."""

from __future__ import annotations

from floorwalker import cli
from floorwalker.simulators.faults import NAMES
from floorwalker.simulators.faults.rawmqtt import connect_packet, publish_packet
from floorwalker.simulators.faults.scenarios import SCENARIOS, Result


def test_the_command_offers_every_scenario() -> None:
    assert tuple(SCENARIOS) == NAMES
    args = cli._parser().parse_args(["faults", "--quick", "--only", "kill9", "--only", "forged"])
    assert args.quick and args.only == ["kill9", "forged"]


def test_a_qos1_publish_packet() -> None:
    packet = publish_packet("fw/s/b", b"{}", 7)
    # PUBLISH, QoS 1; remaining length 2 + 6 (topic) + 2 (id) + 2 (payload) = 12
    assert packet == b"\x32\x0c\x00\x06fw/s/b\x00\x07{}"
    big = publish_packet("t", b"x" * 200, 1)
    assert big[1:3] == bytes([(205 % 128) | 0x80, 205 // 128]), "a two-byte remaining length"


def test_a_connect_packet_with_credentials() -> None:
    packet = connect_packet("c", "u", "p")
    assert packet[0] == 0x10
    assert packet[2:8] == b"\x00\x04MQTT" and packet[8] == 4
    assert packet[9] == 0x80 | 0x40 | 0x02, "username, password, clean session"
    assert packet.endswith(b"\x00\x01c\x00\x01u\x00\x01p")


def test_a_summary_line_and_its_failures() -> None:
    r = Result("overload", offered=10, processed=7, deadlettered=1, shed=2)
    r.latency_ms = {"p99": 12.34}
    assert "overload" in r.line() and "ok" in r.line() and "p99=12.3ms" in r.line()
    r.check(False, "RSS grew 100 MB")
    assert not r.ok and r.problems == ["RSS grew 100 MB"] and "FAIL" in r.line()
    assert r.to_json()["offered"] == 10
