"""Start the cluster's processes on this machine: workers and a bridge as child processes.

``cluster-demo``, ``bench cluster`` and the integration tests run the real
commands (``floorwalker worker``, ``floorwalker bridge``) as children, so that a
``kill -9`` is a real one. Passwords go to the children in files, never on a
command line; every child's output goes to its own log file.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.errors import ServiceError

FLOORWALKER = (sys.executable, "-m", "floorwalker.cli")
_READY = re.compile(r"floorwalker worker: ready, partitions \[([0-9, ]*)\]")


@dataclass(frozen=True)
class Cluster:
    """What every worker and bridge of one cluster share."""

    kafka: str
    registries: tuple[Path, ...]
    rules: Path
    workdir: Path
    prefix: str = "fw"
    partitions: int = 4
    redis: str | None = None
    redis_prefix: str = "fw:"
    app_id: str = "floorwalker"

    def worker_argv(
        self, name: str, *, clock: str = "wall", extra: Sequence[str] = ()
    ) -> list[str]:
        argv = [*FLOORWALKER, "worker", "--kafka", self.kafka, "--rules", str(self.rules)]
        for registry in self.registries:
            argv += ["--registry", str(registry)]
        argv += ["--clock", clock, "--prefix", self.prefix, "--partitions", str(self.partitions)]
        argv += ["--app-id", self.app_id, "--name", name]
        argv += ["--datadir", str(self.workdir / f"{name}-data")]
        if self.redis is not None:
            argv += ["--redis", self.redis, "--redis-prefix", self.redis_prefix]
        return [*argv, *extra]

    def bridge_argv(self, mqtt: BrokerAddress, client_id: str) -> list[str]:
        argv = [*FLOORWALKER, "bridge", "--mqtt", f"mqtt://{mqtt.host}:{mqtt.port}"]
        if mqtt.username is not None:
            argv += ["--mqtt-username", mqtt.username]
        if mqtt.password is not None:
            secret = self.workdir / f"{client_id}.password"
            secret.write_text(mqtt.password + "\n", encoding="utf-8")
            secret.chmod(0o600)
            argv += ["--mqtt-password-file", str(secret)]
        argv += ["--kafka", self.kafka, "--prefix", self.prefix, "--client-id", client_id]
        argv += ["--app-id", self.app_id, "--partitions", str(self.partitions)]
        if self.redis is not None:
            argv += ["--redis", self.redis, "--redis-prefix", self.redis_prefix]
        return argv


@dataclass
class Child:
    """One child process, its output in ``log``."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Child:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches the parent only
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM, SIGKILL after ``timeout_s``; the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode

    def text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def ready_partitions(self) -> list[int] | None:
        """The partitions of the worker's latest "ready" line (None before the first)."""
        found = _READY.findall(self.text())
        if not found:
            return None
        return [int(p) for p in found[-1].split(",") if p.strip()]


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """A list to append started children to; all stopped (SIGTERM) at the end."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            child.stop()


def wait_shared(
    workers: Sequence[Child], partitions: int, timeout_s: float
) -> dict[str, list[int]]:
    """Until the live workers are ready and together own every partition exactly once."""
    deadline = time.monotonic() + timeout_s
    while True:
        for w in workers:
            if not w.alive:
                raise ServiceError(f"worker {w.name} exited:\n{w.tail()}")
        parts = {w.name: w.ready_partitions() for w in workers}
        flat = sorted(p for ps in parts.values() if ps for p in ps)
        if all(parts.values()) and flat == list(range(partitions)):
            return {name: ps or [] for name, ps in parts.items()}
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {w.name}\n{w.tail(10)}" for w in workers)
            raise ServiceError(f"the workers did not share the partitions:\n{tails}")
        time.sleep(0.1)
