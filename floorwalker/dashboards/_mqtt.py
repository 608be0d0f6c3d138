"""Small MQTT clients for the demo's simulated devices and the dashboard's probe.

Each is a paho client with its own network thread (``loop_start``), a clean
session, and its subscriptions made again on every (re)connect. :func:`connect`
returns once the broker has accepted the session and acknowledged the
subscriptions, so nothing published after it returns is missed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from floorwalker.errors import ServiceError

MessageHandler = Callable[[str, bytes], None]
"""``(topic, payload)``, called on paho's network thread: keep it short, never block."""


def connect(
    client_id: str,
    host: str,
    port: int,
    *,
    subscriptions: Sequence[str] = (),
    on_message: MessageHandler | None = None,
    max_inflight: int = 100,
    timeout_s: float = 10.0,
) -> paho.Client:
    """A connected client, subscribed (QoS 1) to ``subscriptions``; :func:`close` it."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=paho.MQTTv311,
    )
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)
    ready = threading.Event()

    def on_connect(c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        if subscriptions:
            c.subscribe([(topic, 1) for topic in subscriptions])
        else:
            ready.set()

    def on_subscribe(_c: paho.Client, _u: Any, _mid: int, _codes: Any, _p: Any) -> None:
        ready.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_socket_open = _nodelay
    if on_message is not None:
        handler = on_message

        def deliver(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            handler(msg.topic, bytes(msg.payload))

        client.on_message = deliver
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise ServiceError(f"{client_id}: cannot reach the broker {host}:{port}: {exc}") from exc
    client.loop_start()
    if not ready.wait(timeout_s):
        close(client)
        raise ServiceError(f"{client_id}: the broker {host}:{port} did not answer in time")
    return client


def _nodelay(_c: paho.Client, _u: Any, sock: Any) -> None:
    """Small messages go out at once (Nagle's algorithm would hold them back)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def close(client: paho.Client) -> None:
    """Disconnect and stop the network thread (idempotent)."""
    client.disconnect()
    client.loop_stop()
