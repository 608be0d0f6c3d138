"""``floorwalker cluster-demo`` for a bounded time: actions flow, every child exits."""

from __future__ import annotations

import io
import os

import pytest

from floorwalker.cli import _parser
from floorwalker.dashboards.cluster_demo import ClusterDemoSettings, run_cluster_demo
from floorwalker.simulators.live_devices import StaffSettings


def test_cli_cluster_demo_options() -> None:
    args = _parser().parse_args(["cluster-demo", "--seconds", "30", "--workers", "2"])
    assert (args.seconds, args.minutes, args.workers, args.partitions) == (30.0, None, 2, 4)


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_the_cluster_demo_runs_end_to_end_and_stops_everything() -> None:
    out = io.StringIO()
    settings = ClusterDemoSettings(
        seconds=30.0,
        shoppers=200,
        speed=2.0,
        block_minutes=3.0,
        warm_minutes=2.0,
        staff=StaffSettings(
            ack_delay_s=(1.0, 6.0), decline_delay_s=(0.5, 2.0), done_after_s=(2, 8)
        ),
    )
    result = run_cluster_demo(settings, out=out)
    text = out.getvalue()

    assert not result.interrupted
    assert result.published > 500
    assert sum(result.received.values()) > 0, "actions reached the devices through the cluster"
    assert result.exit_codes == {"worker-1": 0, "worker-0": 0, "bridge": 0}, text
    for what in (
        "mqtt     mqtt://127.0.0.1:",
        "kafka    127.0.0.1:",
        "worker-0 pid",
        "bridge   pid",
    ):
        assert what in text, what
    assert "[   " in text and "exit codes: worker-1 0, worker-0 0, bridge 0" in text
    assert "password" not in text.lower()
    for pid in result.pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
