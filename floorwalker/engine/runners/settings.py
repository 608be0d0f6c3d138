"""Settings of the live edge runner: a frozen value, from flags, environment and a file.

Precedence, highest first: command-line flags, ``FLOORWALKER_*`` environment
variables, the TOML config file (``--config`` or ``FLOORWALKER_CONFIG``), then
the defaults below. The file uses the field names of :class:`EdgeSettings`::

    mqtt = "mqtt://127.0.0.1:1883"
    redis = "redis://127.0.0.1:6379/0"
    registries = ["stores/s001.yaml"]
    rules = "rules/"
    metrics_port = 9108
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from floorwalker.errors import ConfigError

ENV_PREFIX = "FLOORWALKER_"


@dataclass(frozen=True)
class EdgeSettings:
    mqtt: str = "mqtt://127.0.0.1:1883"
    redis: str | None = None
    """None runs without Redis: guard state in memory, profiles from ``profiles``."""
    registries: tuple[Path, ...] = ()
    rules: Path = Path("rules")
    profiles: Path | None = None
    metrics_port: int | None = None
    prefix: str = "fw"
    redis_prefix: str = "fw:"
    client_id: str = "floorwalker-edge"
    queue_size: int = 20000
    lateness_s: float = 0.0
    reload_poll_s: float = 1.0
    device_silence_s: float = 300.0
    snapshot_every_s: float = 1.0

    @property
    def mqtt_host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.mqtt)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ConfigError(f"--mqtt must look like mqtt://host:port, got {self.mqtt!r}")
        return parts.hostname, parts.port or 1883


_CASTS: dict[str, Any] = {
    "registries": lambda v: tuple(
        Path(p) for p in (v if isinstance(v, list | tuple) else _split(v))
    ),
    "rules": Path,
    "profiles": Path,
    "metrics_port": int,
    "queue_size": int,
    "lateness_s": float,
    "reload_poll_s": float,
    "device_silence_s": float,
    "snapshot_every_s": float,
}


def _split(value: str) -> list[str]:
    return [p for p in value.replace(os.pathsep, ",").split(",") if p]


def load_settings(
    flags: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    config: Path | None = None,
) -> EdgeSettings:
    """Merge flags (None = not given), environment and config file into settings."""
    env = os.environ if environ is None else environ
    path = config or (Path(env[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in env else None)
    merged: dict[str, Any] = dict(_read_file(path)) if path else {}
    names = {f.name for f in fields(EdgeSettings)}
    for name in names:
        key = ENV_PREFIX + name.upper()
        if key in env:
            merged[name] = env[key]
    merged.update({k: v for k, v in flags.items() if v is not None and k in names})
    unknown = set(merged) - names
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}", file=str(path))
    try:
        values = {k: (_CASTS[k](v) if k in _CASTS else v) for k, v in merged.items()}
        settings = EdgeSettings(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad setting: {exc}") from exc
    if not settings.registries:
        raise ConfigError("at least one --registry is needed (or FLOORWALKER_REGISTRIES)")
    settings.mqtt_host_port  # noqa: B018 - validate the URL now, not at connect time
    return settings


def _read_file(path: Path) -> Mapping[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc}", file=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=str(path)) from exc
