"""Real Mosquitto, Redis and Prometheus servers on loopback, started and owned by Floorwalker.

The demo, the live runner's local mode and the integration tests all need a
broker and a Redis they control: generated configs, free ports, their own data
directories, and no daemon left behind. Usage::

    with services.mosquitto(MosquittoSettings(), workdir) as broker:
        run(mqtt_url=broker.url)

Every server binds a loopback address only. Mosquitto lets anonymous clients in
unless :class:`MosquittoSettings` has ``auth`` (a password file and an ACL file
from :mod:`floorwalker.devices.broker_config`, optionally a TLS listener too):
the demo and the integration tests run with it on. Child processes are stopped
when the ``with`` block ends, on an exception too, and at interpreter exit for
servers started without one.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from floorwalker.devices.broker_config import (
    AUTOSAVE_INTERVAL_S,
    BrokerAuth,
    auth_lines,
    tls_listener_lines,
)
from floorwalker.errors import ServiceError

LOOPBACK = "127.0.0.1"
BOOTSTRAP_HINT = "run scripts/bootstrap.sh to install it"
_SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin")
_LOG_TAIL_LINES = 20
_PORT_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class MosquittoSettings:
    host: str = LOOPBACK
    port: int = 0
    """0 picks a free port."""
    max_queued_messages: int = 100_000
    """Per-client queue while a subscriber is slow or away. Mosquitto's default of
    1000 silently dropped 3.4% of a QoS 1 load test; 0 would be unbounded."""
    max_inflight_messages: int = 20
    """QoS 1/2 messages in flight per client (Mosquitto's and paho's default)."""
    persistence: bool = True
    """Retained messages, persistent sessions and their queues survive a restart."""
    autosave_interval_s: int = AUTOSAVE_INTERVAL_S
    """With persistence: seconds between saves (and one at every orderly stop)."""
    data_dir: Path | None = None
    """Where persistence writes; default ``<workdir>/mosquitto-<port>/data``."""
    auth: BrokerAuth | None = None
    """Identities and ACLs (``allow_anonymous false``); None lets anonymous clients in."""
    tls_port: int = 0
    """With ``auth.tls``: the TLS listener's port; 0 picks a free one."""
    start_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class RedisSettings:
    host: str = LOOPBACK
    port: int = 0
    """0 picks a free port."""
    appendonly: bool = False
    save: str = ""
    """Redis ``save`` points, e.g. ``"60 1000"``; empty disables RDB snapshots."""
    data_dir: Path | None = None
    """Where AOF/RDB files go; default ``<workdir>/redis-<port>/data``."""
    start_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class PrometheusSettings:
    """A Prometheus that scrapes ``targets`` (``host:port``) every ``scrape_interval_s``."""

    targets: tuple[str, ...] = ()
    host: str = LOOPBACK
    port: int = 0
    """0 picks a free port."""
    scrape_interval_s: float = 1.0
    config: Mapping[str, Any] | None = None
    """A whole prometheus.yml to start from (e.g. the shipped scrape config); its scrape
    jobs are pointed at ``targets`` and its intervals set to ``scrape_interval_s``."""
    start_timeout_s: float = 20.0


@dataclass(frozen=True, slots=True)
class _Spec:
    """How to configure, launch and probe one kind of server."""

    name: str
    binary: str
    host: str
    scheme_url: Callable[[str, int], str]
    write_config: Callable[[Path, int], Path]
    """(instance dir, port) -> config file."""
    argv: Callable[[Path, int], list[str]]
    """(config file, port) -> command line."""
    probe: Callable[[str, int], bool]
    start_timeout_s: float
    tls_port: Callable[[Path], int | None] = lambda _instance_dir: None
    """The TLS listener's port of an instance, if it has one."""


class _PortTakenError(ServiceError):
    """The server could not bind its port; retried on another when the port was ours to pick."""


class RunningService:
    """One server process we own; ``restart`` keeps its port and data directory."""

    def __init__(self, spec: _Spec, port: int, workdir: Path) -> None:
        self._spec = spec
        self.host = spec.host
        self.port = port
        self.dir = workdir / f"{spec.name}-{port}"
        self.log_path = self.dir / f"{spec.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        self._owner_pid = os.getpid()

    @property
    def url(self) -> str:
        return self._spec.scheme_url(self.host, self.port)

    @property
    def tls_port(self) -> int | None:
        """The port of a TLS listener (Mosquitto with ``auth.tls``), else None."""
        return self._spec.tls_port(self.dir)

    @property
    def tls_url(self) -> str | None:
        """``mqtts://localhost:PORT`` (the name the generated certificate is for), or None."""
        port = self.tls_port
        return None if port is None else f"mqtts://localhost:{port}"

    @property
    def pid(self) -> int:
        """Process id of the current (or last) server process."""
        if self._proc is None:
            raise ServiceError(f"{self._spec.name} was never started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Launch the server and wait until it answers; ServiceError if it does not."""
        if self.running:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self._spec.write_config(self.dir, self.port)
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        _LIVE.add(self)
        try:
            self._proc = subprocess.Popen(
                self._spec.argv(config, self.port),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                # Own session: a terminal's Ctrl-C reaches only us, and we stop the
                # server in order instead of it dying under a still-running engine.
                start_new_session=True,
            )
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._release()

    def kill(self) -> None:
        """SIGKILL without a chance to save anything: for fault-injection tests."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        self._release()

    def pause(self) -> None:
        """SIGSTOP: the server holds its connections and answers nothing (fault injection)."""
        if self._proc is None or self._proc.poll() is not None:
            raise ServiceError(f"{self._spec.name} is not running")
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port with the same data."""
        self.stop()
        self.start()

    def log_tail(self) -> str:
        """The last lines the server logged since its latest start."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:]) or "(log is empty)"

    def __enter__(self) -> RunningService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RunningService {self._spec.name} {self.url} {state}>"

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._spec.start_timeout_s
        while True:
            code = self._proc.poll()
            if code is not None:
                raise self._start_failure(f"exited with code {code} while starting")
            # Ownership first: a server that failed to bind must not pass the
            # probe by way of someone else's server answering on that port.
            if _listens(self._proc.pid, self.port) and self._spec.probe(self.host, self.port):
                return
            if time.monotonic() > deadline:
                raise self._start_failure(f"did not answer within {self._spec.start_timeout_s:g} s")
            time.sleep(0.02)

    def _start_failure(self, what: str) -> ServiceError:
        tail = self.log_tail()
        message = (
            f"{self._spec.name} on {self.host}:{self.port} {what}\n"
            f"--- {self.log_path} (tail) ---\n{tail}"
        )
        if "Address already in use" in tail:
            return _PortTakenError(message)
        return ServiceError(message)

    def _release(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        _LIVE.discard(self)

    def _cleanup_at_exit(self) -> None:
        # A forked child inherits this registry; only the process that started
        # the server may stop it.
        if os.getpid() == self._owner_pid:
            self.stop(timeout_s=3.0)


_LIVE: set[RunningService] = set()


@atexit.register
def _stop_leftovers() -> None:
    for service in list(_LIVE):
        service._cleanup_at_exit()


def _start_service(spec: _Spec, requested_port: int, workdir: Path) -> RunningService:
    """Start ``spec`` on ``requested_port`` (0: a free one, retried if it gets taken)."""
    attempts = 1 if requested_port else _PORT_ATTEMPTS
    for attempt in range(attempts):
        service = RunningService(spec, requested_port or free_port(spec.host), workdir)
        try:
            service.start()
        except _PortTakenError:
            if attempt + 1 == attempts:
                raise
            continue
        return service
    raise AssertionError("unreachable")


def start_mosquitto(settings: MosquittoSettings, workdir: Path | str) -> RunningService:
    """Start a broker; the caller must ``stop()`` it (prefer :func:`mosquitto`)."""
    return _start_service(_mosquitto_spec(settings), settings.port, Path(workdir))


def start_redis(settings: RedisSettings, workdir: Path | str) -> RunningService:
    """Start a Redis; the caller must ``stop()`` it (prefer :func:`redis`)."""
    return _start_service(_redis_spec(settings), settings.port, Path(workdir))


def start_prometheus(settings: PrometheusSettings, workdir: Path | str) -> RunningService:
    """Start a Prometheus; the caller must ``stop()`` it (prefer :func:`prometheus`)."""
    return _start_service(_prometheus_spec(settings), settings.port, Path(workdir))


@contextlib.contextmanager
def prometheus(settings: PrometheusSettings, workdir: Path | str) -> Iterator[RunningService]:
    """A Prometheus on loopback for the duration of the block; ``url`` is its HTTP API."""
    with start_prometheus(settings, workdir) as service:
        yield service


@contextlib.contextmanager
def mosquitto(settings: MosquittoSettings, workdir: Path | str) -> Iterator[RunningService]:
    """A Mosquitto broker on loopback for the duration of the block."""
    with start_mosquitto(settings, workdir) as service:
        yield service


@contextlib.contextmanager
def redis(settings: RedisSettings, workdir: Path | str) -> Iterator[RunningService]:
    """A Redis server on loopback for the duration of the block."""
    with start_redis(settings, workdir) as service:
        yield service


def find_binary(name: str) -> str:
    """Absolute path of a server binary, or ServiceError saying how to install it."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SEARCH_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise ServiceError(
        f"`{name}` not found on PATH nor in {', '.join(_SEARCH_DIRS)}: {BOOTSTRAP_HINT}"
    )


def _listens(pid: int, port: int) -> bool:
    """True if process ``pid`` holds a listening TCP socket on ``port`` (Linux /proc).

    Elsewhere there is no cheap way to tell, and this answers True.
    """
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return True
    inodes = {inode for table in tables for inode in _listening_inodes(table, port)}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    return False


def _listening_inodes(table: Path, port: int) -> Iterator[str]:
    try:
        rows = table.read_text().splitlines()[1:]
    except OSError:
        return
    for row in rows:
        # sl local_address rem_address st ... inode; st 0A is LISTEN
        fields = row.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            yield fields[9]


def require_loopback(host: str, name: str) -> None:
    # Redis runs without authentication, and Mosquitto may; that is only
    # acceptable when nothing outside this machine can reach them.
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ServiceError(f"{name} must bind a loopback IP address, got {host!r}")


def _data_dir(configured: Path | None, instance_dir: Path) -> Path:
    path = configured if configured is not None else instance_dir / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


# --- Mosquitto ---------------------------------------------------------------


def _mosquitto_spec(settings: MosquittoSettings) -> _Spec:
    require_loopback(settings.host, "mosquitto")
    auth = settings.auth
    tls_ports: dict[Path, int] = {}
    """Instance dir -> TLS port, picked at the first start and kept by restarts."""

    def tls_port(instance_dir: Path) -> int | None:
        if auth is None or auth.tls is None:
            return None
        if instance_dir not in tls_ports:
            tls_ports[instance_dir] = settings.tls_port or free_port(settings.host)
        return tls_ports[instance_dir]

    def write_config(instance_dir: Path, port: int) -> Path:
        lines = [
            "# Generated by floorwalker.services; rewritten at every start.",
            f"listener {port} {settings.host}",
            *(auth_lines(auth) if auth is not None else ["allow_anonymous true"]),
            "set_tcp_nodelay true",
            f"max_queued_messages {settings.max_queued_messages}",
            "max_queued_bytes 0",
            f"max_inflight_messages {settings.max_inflight_messages}",
            f"persistence {'true' if settings.persistence else 'false'}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if os.geteuid() == 0:
            # As root Mosquitto would switch to user `mosquitto`, which cannot
            # write our root-owned data dir; "root" means "stay who you are".
            lines.append("user root")
        if settings.persistence:
            # Mosquitto wants the trailing slash to treat it as a directory.
            lines.append(f"persistence_location {_data_dir(settings.data_dir, instance_dir)}/")
            lines.append(f"autosave_interval {settings.autosave_interval_s}")
        tls = tls_port(instance_dir)
        if auth is not None and auth.tls is not None and tls is not None:
            lines += tls_listener_lines(auth.tls, tls, settings.host)  # last: its own lines
        path = instance_dir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    binary = find_binary("mosquitto")
    return _Spec(
        name="mosquitto",
        binary=binary,
        host=settings.host,
        scheme_url=lambda host, port: f"mqtt://{host}:{port}",
        write_config=write_config,
        argv=lambda config, _port: [binary, "-c", str(config)],
        probe=_mqtt_answers,
        start_timeout_s=settings.start_timeout_s,
        tls_port=tls_port,
    )


# MQTT 3.1.1 CONNECT: clean session, keepalive 60 s, empty client id (the
# broker assigns one), anonymous; a CONNACK is 0x20 0x02, flags, return code.
_MQTT_CONNECT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
_MQTT_CONNACK_HEAD = b"\x20\x02\x00"
_MQTT_CONNACK_ANSWERS = (0x00, 0x04, 0x05)
"""Accepted; bad user name or password; not authorised (a broker with ``auth``)."""
_MQTT_DISCONNECT = b"\xe0\x00"


def _mqtt_answers(host: str, port: int) -> bool:
    """True once the broker answers an MQTT CONNECT, not merely a TCP connection.

    An anonymous CONNECT: a broker without ``auth`` accepts it, one with ``auth``
    refuses it; either answer means the broker is up.
    """
    reply = _exchange(host, port, _MQTT_CONNECT, len(_MQTT_CONNACK_HEAD) + 1, _MQTT_DISCONNECT)
    return len(reply) == 4 and reply[:3] == _MQTT_CONNACK_HEAD and reply[3] in _MQTT_CONNACK_ANSWERS


# --- Redis -------------------------------------------------------------------


def _redis_spec(settings: RedisSettings) -> _Spec:
    require_loopback(settings.host, "redis")

    def write_config(instance_dir: Path, port: int) -> Path:
        lines = [
            "# Generated by floorwalker.services; rewritten at every start.",
            f"bind {settings.host}",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            'logfile ""',
            f"dir {_redis_quote(str(_data_dir(settings.data_dir, instance_dir)))}",
            f"save {settings.save}" if settings.save else 'save ""',
            f"appendonly {'yes' if settings.appendonly else 'no'}",
        ]
        path = instance_dir / "redis.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    binary = find_binary("redis-server")
    return _Spec(
        name="redis",
        binary=binary,
        host=settings.host,
        scheme_url=lambda host, port: f"redis://{host}:{port}/0",
        write_config=write_config,
        argv=lambda config, _port: [binary, str(config)],
        probe=_redis_answers,
        start_timeout_s=settings.start_timeout_s,
    )


# --- Prometheus --------------------------------------------------------------


def prometheus_config(settings: PrometheusSettings) -> dict[str, Any]:
    """The prometheus.yml to run: ``settings.config`` (or a minimal one) aimed at the targets."""
    every = f"{settings.scrape_interval_s:g}s"
    config = dict(settings.config or {"scrape_configs": [{"job_name": "floorwalker"}]})
    config["global"] = {
        **dict(config.get("global") or {}),
        "scrape_interval": every,
        "evaluation_interval": every,
    }
    jobs = []
    for given in config.get("scrape_configs") or []:
        job = {
            k: v for k, v in dict(given).items() if k not in ("scrape_interval", "scrape_timeout")
        }
        job["static_configs"] = [{"targets": list(settings.targets)}]
        jobs.append(job)
    config["scrape_configs"] = jobs
    config.pop("rule_files", None)  # relative to the shipped file; not part of a scrape test
    return config


def _prometheus_spec(settings: PrometheusSettings) -> _Spec:
    require_loopback(settings.host, "prometheus")

    def write_config(instance_dir: Path, port: int) -> Path:
        path = instance_dir / "prometheus.yml"
        header = "# Generated by floorwalker.services; rewritten at every start.\n"
        path.write_text(header + yaml.safe_dump(prometheus_config(settings), sort_keys=False))
        return path

    binary = find_binary("prometheus")

    def argv(config: Path, port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={_data_dir(None, config.parent)}",
            f"--web.listen-address={settings.host}:{port}",
            "--log.level=warn",
        ]

    return _Spec(
        name="prometheus",
        binary=binary,
        host=settings.host,
        scheme_url=lambda host, port: f"http://{host}:{port}",
        write_config=write_config,
        argv=argv,
        probe=_http_ready,
        start_timeout_s=settings.start_timeout_s,
    )


def _http_ready(host: str, port: int) -> bool:
    """True once ``GET /-/ready`` answers 200 (Prometheus has loaded its storage)."""
    request = f"GET /-/ready HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode()
    reply = _exchange(host, port, request, len(b"HTTP/1.1 200"))
    return reply.startswith(b"HTTP/1.") and reply[9:12] == b"200"


def _redis_quote(text: str) -> str:
    """A double-quoted redis.conf argument (paths may hold spaces)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _redis_answers(host: str, port: int) -> bool:
    """True once PING answers PONG (not -LOADING while an AOF is replayed)."""
    return _exchange(host, port, b"PING\r\n", len(b"+PONG\r\n")) == b"+PONG\r\n"


def _exchange(host: str, port: int, request: bytes, size: int, farewell: bytes = b"") -> bytes:
    """Send ``request``, read up to ``size`` bytes; b"" if the port does not answer yet."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(request)
            reply = b""
            while len(reply) < size:
                chunk = s.recv(size - len(reply))
                if not chunk:
                    break
                reply += chunk
            if farewell:
                s.sendall(farewell)
            return reply
    except OSError:
        return b""
