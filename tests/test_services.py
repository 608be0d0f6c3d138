"""Real Mosquitto and Redis servers: start, answer, stop, die, restart, clean up."""

from __future__ import annotations

import queue
import shutil
import socket
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import redis as redis_py
from paho.mqtt.enums import CallbackAPIVersion

from floorwalker import services
from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.errors import ServiceError
from floorwalker.services import MosquittoSettings, RedisSettings, RunningService

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    # Our children are reaped on stop, so a gone process has no /proc entry.
    return Path(f"/proc/{pid}").exists()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _redis_client(service: RunningService) -> redis_py.Redis:
    return redis_py.Redis.from_url(service.url, socket_timeout=2.0, decode_responses=True)


def _mqtt_client(service: RunningService, who: BrokerAddress | None = None) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    if who is not None:
        client.username_pw_set(who.username, who.password)
    client.connect(service.host, service.port)
    client.loop_start()
    return client


def _receive(
    service: RunningService, topic: str, publish: bytes | None, who: BrokerAddress | None = None
) -> bytes:
    """Subscribe to ``topic``, optionally publish ``publish`` to it, return the first message."""
    got: queue.Queue[bytes] = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    if who is not None:
        client.username_pw_set(who.username, who.password)
    client.on_message = lambda _c, _u, message: got.put(bytes(message.payload))
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect(service.host, service.port)
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        assert subscribed.wait(5.0), "no SUBACK from the broker"
        if publish is not None:
            client.publish(topic, publish, qos=1).wait_for_publish(5.0)
        return got.get(timeout=5.0)
    finally:
        client.disconnect()
        client.loop_stop()


def test_session_broker_delivers_qos1(
    mosquitto_service: RunningService, unique_prefix: str, tester: BrokerAddress
) -> None:
    assert mosquitto_service.url == f"mqtt://127.0.0.1:{mosquitto_service.port}"
    assert _receive(mosquitto_service, f"{unique_prefix}/ping", b"pong", tester) == b"pong"


def test_session_redis_answers(redis_service: RunningService, unique_prefix: str) -> None:
    assert redis_service.url == f"redis://127.0.0.1:{redis_service.port}/0"
    client = _redis_client(redis_service)
    client.set(f"{unique_prefix}:k", "v")
    assert client.get(f"{unique_prefix}:k") == "v"
    client.close()


def test_both_stop_and_leave_no_process(tmp_path: Path) -> None:
    with (
        services.mosquitto(MosquittoSettings(), tmp_path) as broker,
        services.redis(RedisSettings(), tmp_path) as store,
    ):
        pids, ports = (broker.pid, store.pid), (broker.port, store.port)
        assert all(_alive(pid) for pid in pids)
        assert _redis_client(store).ping() is True
        assert _receive(broker, "t/hello", b"hi") == b"hi"
    assert not any(_alive(pid) for pid in pids)
    assert not any(_accepts(port) for port in ports)
    assert not broker.running and not store.running


def test_exception_in_block_still_stops_the_server(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), services.redis(RedisSettings(), tmp_path) as r:
        pid = r.pid
        raise RuntimeError("boom")
    assert not _alive(pid)


def test_kill_is_sigkill_and_restart_comes_back_on_the_same_port(tmp_path: Path) -> None:
    with services.redis(RedisSettings(), tmp_path) as r:
        first_pid, port = r.pid, r.port
        r.kill()
        assert not _alive(first_pid)
        assert not _accepts(port)
        # SIGTERM would have logged an orderly shutdown; SIGKILL leaves no word.
        assert "shutdown" not in r.log_tail().lower()
        r.restart()
        assert r.port == port and r.pid != first_pid
        assert _redis_client(r).ping() is True
        r.stop()
        assert "shutdown" in r.log_tail().lower()


def test_second_redis_on_another_port_is_independent(
    tmp_path: Path, redis_service: RunningService, unique_prefix: str
) -> None:
    with services.redis(RedisSettings(), tmp_path) as other:
        assert other.port != redis_service.port
        _redis_client(other).set(f"{unique_prefix}:only-here", "1")
        assert _redis_client(redis_service).exists(f"{unique_prefix}:only-here") == 0
        assert _redis_client(other).exists(f"{unique_prefix}:only-here") == 1


def test_redis_appendonly_survives_restart(tmp_path: Path) -> None:
    with services.redis(RedisSettings(appendonly=True), tmp_path) as r:
        _redis_client(r).set("budget", "42")
        r.kill()  # even without a chance to save: the AOF already has it
        r.restart()
        assert _redis_client(r).get("budget") == "42"


def test_data_dir_may_contain_spaces(tmp_path: Path) -> None:
    data = tmp_path / "my data"
    with services.redis(RedisSettings(appendonly=True, data_dir=data), tmp_path) as r:
        _redis_client(r).set("k", "v")
    assert any(data.rglob("*.aof")), "Redis wrote its AOF elsewhere"


def test_mosquitto_persistence_keeps_retained_messages(tmp_path: Path) -> None:
    with services.mosquitto(MosquittoSettings(persistence=True), tmp_path) as broker:
        client = _mqtt_client(broker)
        client.publish(
            "fw/s001/device/gw-1/status", b"online", qos=1, retain=True
        ).wait_for_publish(5.0)
        client.disconnect()
        client.loop_stop()
        broker.restart()  # SIGTERM: Mosquitto writes its persistence file on the way out
        assert _receive(broker, "fw/s001/device/gw-1/status", None) == b"online"


def test_mosquitto_config_is_the_projects(tmp_path: Path) -> None:
    with services.mosquitto(MosquittoSettings(), tmp_path) as broker:
        config = (broker.dir / "mosquitto.conf").read_text().splitlines()
    assert f"listener {broker.port} 127.0.0.1" in config
    assert "max_queued_messages 100000" in config
    assert "set_tcp_nodelay true" in config
    assert "allow_anonymous true" in config  # no `auth`: a loopback broker for anyone
    assert "persistence true" in config and "autosave_interval 5" in config
    assert broker.tls_port is None and broker.tls_url is None


def test_session_broker_config_has_auth_and_a_tls_listener(
    mosquitto_service: RunningService,
) -> None:
    config = (mosquitto_service.dir / "mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in config and "allow_anonymous true" not in config
    assert any(line.startswith("password_file ") for line in config)
    assert any(line.startswith("acl_file ") for line in config)
    assert f"listener {mosquitto_service.tls_port} 127.0.0.1" in config
    assert mosquitto_service.tls_url == f"mqtts://localhost:{mosquitto_service.tls_port}"


def test_explicit_port_in_use_fails_with_the_log(
    tmp_path: Path, redis_service: RunningService
) -> None:
    with (
        pytest.raises(ServiceError, match="Address already in use") as caught,
        services.redis(RedisSettings(port=redis_service.port), tmp_path),
    ):
        pass
    assert "redis.log" in str(caught.value)


def test_bad_config_fails_fast_with_the_log_tail(tmp_path: Path) -> None:
    with (
        pytest.raises(ServiceError, match="exited with code") as caught,
        services.redis(RedisSettings(save="never ever"), tmp_path),
    ):
        pass
    assert "FATAL CONFIG FILE ERROR" in str(caught.value)


def test_non_loopback_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="loopback"):
        services.start_mosquitto(MosquittoSettings(host="0.0.0.0"), tmp_path)
    with pytest.raises(ServiceError, match="loopback"):
        services.start_redis(RedisSettings(host="192.0.2.1"), tmp_path)


def test_missing_binary_tells_to_run_bootstrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(services, "_SEARCH_DIRS", (str(tmp_path),))
    with pytest.raises(ServiceError, match=r"scripts/bootstrap\.sh"):
        services.start_redis(RedisSettings(), tmp_path)


def test_free_port_is_bindable() -> None:
    port = services.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    assert 0 < port < 65536
