"""Settings of the live edge runner: a frozen pydantic-settings model.

:func:`load_settings` is the one place that reads the outside world. Precedence,
highest first: command-line flags (passed as init kwargs), ``FLOORWALKER_*``
environment variables, the TOML config file (``--config`` or
``FLOORWALKER_CONFIG``), then the defaults below. The file uses the field names
of :class:`EdgeSettings`::

    mqtt = "mqtt://127.0.0.1:1883"
    redis = "redis://127.0.0.1:6379/0"
    registries = ["stores/s001.yaml"]
    rules = "rules/"
    metrics_port = 9108
    snapshot_every_s = "500ms"

Constructing ``EdgeSettings(...)`` directly reads neither the environment nor a
file: only the keyword arguments and the defaults count, so code and tests that
build settings by hand get exactly what they wrote.

Durations (the ``*_s`` fields) are seconds; from the environment or the file
they may also be written ``500ms``, ``10s``, ``5m``, ``1h30m``.
``FLOORWALKER_REGISTRIES`` is a comma or ``os.pathsep`` separated list.

Every problem becomes a :class:`~floorwalker.errors.ConfigError` naming the
setting and where its value came from (flag, environment variable or file).
Passwords in URLs are masked in ``repr()``, ``str()`` and error messages.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from floorwalker.engine.runners.broker import BrokerAddress, check_url, redact_url
from floorwalker.engine.runners.inbox import DEFAULT_INBOX_BYTES, DEFAULT_INBOX_ITEMS
from floorwalker.errors import ConfigError
from floorwalker.rules.durations import DurationError, parse_duration

ENV_PREFIX = "FLOORWALKER_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"

_FLAG_NAMES = {
    "registries": "--registry",
    "lateness_s": "--lateness",
    "snapshot_every_s": "--snapshot-every",
}
"""Flags whose name is not the field name with dashes."""


# --------------------------------------------------------------------------- helpers


INTERVAL_HINT = "write seconds (0.5) or 500ms, 10s, 5m, 1h30m; 0 for none"
_MS_RE = re.compile(r"^(?P<n>[0-9]+(?:\.[0-9]+)?)ms$")


def parse_interval(value: str | int | float) -> float:
    """Seconds in a settings duration: ``0.5``, ``500ms``, ``1s``, ``5m``, ``1h30m``; 0 allowed."""
    if isinstance(value, str) and (match := _MS_RE.match(value)):
        return float(match["n"]) / 1000.0
    try:
        return parse_duration(value, allow_zero=True)
    except DurationError:
        raise DurationError(f"`{value}` is not a duration; {INTERVAL_HINT}") from None


def _split_paths(value: str) -> list[str]:
    return [p.strip() for p in value.replace(os.pathsep, ",").split(",") if p.strip()]


# --------------------------------------------------------------------------- the model


@dataclass
class _Loading:
    """What :func:`load_settings` hands to :meth:`EdgeSettings.settings_customise_sources`."""

    environ: Mapping[str, str]
    config: Path | None
    toml: TomlConfigSettingsSource | None = None


_LOADING: ContextVar[_Loading | None] = ContextVar("floorwalker_settings_loading", default=None)


class _EnvironSource(EnvSettingsSource):
    """``FLOORWALKER_*`` variables from a given mapping (``os.environ`` in production)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # As EnvSettingsSource does with os.environ (env_ignore_empty etc. are not used here).
        if self.case_sensitive:
            return dict(self._environ)
        return {name.lower(): value for name, value in self._environ.items()}

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        # A list of paths is written `a.yaml,b.yaml` (or with os.pathsep), not as JSON.
        if field_name == "registries" and isinstance(value, str) and not value.startswith("["):
            return _split_paths(value)
        return super().prepare_field_value(field_name, field, value, value_is_complex)


class EdgeSettings(BaseSettings):
    """Everything the edge runner needs; see the module docstring for where values come from."""

    model_config = SettingsConfigDict(
        frozen=True,
        env_prefix=ENV_PREFIX,
        extra="forbid",
        case_sensitive=False,
        # A ValidationError's text would show the raw input: a URL with its password.
        hide_input_in_errors=True,
    )

    mqtt: str = "mqtt://127.0.0.1:1883"
    """Broker URL, ``mqtt://host:port`` (``tcp://`` too), ``mqtts://`` for TLS; credentials
    may be its userinfo, ``mqtt://user:password@host:port``."""
    mqtt_username: str | None = None
    """MQTT username (wins over the URL's)."""
    mqtt_password: SecretStr | None = None
    """MQTT password (``FLOORWALKER_MQTT_PASSWORD``; no flag: a command line is public)."""
    mqtt_password_file: Path | None = None
    """A file whose first line is the MQTT password."""
    mqtt_ca: Path | None = None
    """CA certificate file verifying an ``mqtts://`` broker; default: the system's CAs."""
    redis: str | None = None
    """None runs without Redis: guard state in memory, profiles from ``profiles``."""
    registries: tuple[Path, ...] = ()
    rules: Path = Path("rules")
    profiles: Path | None = None
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    prefix: str = "fw"
    redis_prefix: str = "fw:"
    client_id: str = "floorwalker-edge"
    queue_size: int = Field(default=DEFAULT_INBOX_ITEMS, gt=0)
    """Most messages held between the MQTT link and the core thread; when full, the
    link stops reading and the broker keeps the backlog."""
    inbox_bytes: int = Field(default=DEFAULT_INBOX_BYTES, gt=0)
    """Most payload bytes held there (bounds the runner's memory under overload)."""
    shed_sightings_after_s: float = Field(default=30.0, ge=0)
    """A message of sightings all older than this (device ``ts``) when the core reaches
    it is shed: counted, acknowledged, not processed (0: never shed)."""
    redis_budget_s: float = Field(default=0.05, gt=0)
    """Most time one event may lose to Redis calls that fail (time out, cannot connect);
    then its decisions fail open (alerts) or closed (offers) at once."""
    redis_call_timeout_s: float = Field(default=0.02, gt=0)
    """Timeout of each Redis call the core thread waits on (within the budget)."""
    redis_retry_s: float = Field(default=1.0, gt=0)
    """After Redis failed to answer, its calls fail at once this long, then one probes."""
    outbox_dir: Path | None = None
    """Where the durable outbox lives (default ``~/.local/state/floorwalker``)."""
    lateness_s: float = Field(default=0.0, ge=0)
    reload_poll_s: float = Field(default=1.0, gt=0)
    device_silence_s: float = Field(default=300.0, gt=0)
    snapshot_every_s: float = Field(default=1.0, ge=0)
    """Seconds between writes of changed stores' state to Redis; 0 disables."""
    network_loop: Literal["core", "thread"] = "core"
    """``core``: the core thread drives the MQTT socket itself (no network thread, acks and
    actions written by the core thread); ``thread``: paho's network thread hands messages
    over through the inbox (the earlier design, kept to compare: ``bench live``)."""
    http_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve the live floor page on this port (0: a free one); None: no page."""
    http_host: str = "127.0.0.1"
    """Address the floor page binds (``0.0.0.0`` for the store network)."""
    http_token: SecretStr | None = None
    """The floor page's access token (``FLOORWALKER_HTTP_TOKEN``); see docs/security.md."""
    http_token_file: Path | None = None
    """A file holding the token; created (0600) with a new token when missing."""
    http_report: Path | None = None
    """The HTML file served at ``/report`` (today's campaign report)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        loading = _LOADING.get()
        if loading is None:
            # Direct construction: keyword arguments and defaults only, no env, no file.
            return (init_settings,)
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _EnvironSource(settings_cls, loading.environ),
        ]
        if loading.config is not None:
            loading.toml = TomlConfigSettingsSource(settings_cls, toml_file=loading.config)
            sources.append(loading.toml)
        return tuple(sources)

    @field_validator("mqtt")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        check_url(value)
        return value

    @field_validator("registries", mode="before")
    @classmethod
    def _registry_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(_split_paths(value))
        return (value,) if isinstance(value, Path) else value

    @field_validator(
        "lateness_s",
        "reload_poll_s",
        "device_silence_s",
        "snapshot_every_s",
        "shed_sightings_after_s",
        "redis_budget_s",
        "redis_call_timeout_s",
        "redis_retry_s",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_interval(value.strip())
            except ValueError:
                raise ValueError(f"must be a duration: {INTERVAL_HINT}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EdgeSettings:
        if self.redis_call_timeout_s > self.redis_budget_s:
            raise ValueError(
                "redis_call_timeout_s must be within redis_budget_s (one call must fit the budget)"
            )
        if 0 < self.shed_sightings_after_s <= self.lateness_s:
            raise ValueError(
                "shed_sightings_after_s must be longer than the reorder window (lateness_s),"
                " or 0 to never shed"
            )
        return self

    @property
    def mqtt_host_port(self) -> tuple[str, int]:
        address = BrokerAddress.from_url(self.mqtt)
        return address.host, address.port

    @property
    def broker(self) -> BrokerAddress:
        """The broker and our identity on it: the URL with the ``mqtt_*`` settings.

        Reads ``mqtt_password_file``; :class:`ConfigError` for anything wrong.
        """
        password = self.mqtt_password.get_secret_value() if self.mqtt_password else None
        return BrokerAddress.from_url(
            self.mqtt,
            username=self.mqtt_username,
            password=password,
            password_file=self.mqtt_password_file,
            ca_file=self.mqtt_ca,
        )

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # Used by both repr() and str(): never show a password.
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if isinstance(value, str) else value)


# --------------------------------------------------------------------------- loading


def load_settings(
    flags: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    config: Path | None = None,
) -> EdgeSettings:
    """Settings from flags (None = not given), ``environ`` (default ``os.environ``) and a file.

    ``config`` (the ``--config`` flag) wins over ``FLOORWALKER_CONFIG``. Raises
    :class:`ConfigError` for anything wrong, naming the setting and its source.
    """
    env = os.environ if environ is None else environ
    if config is None and env.get(CONFIG_ENV):
        config = Path(env[CONFIG_ENV])
    if config is not None and not config.is_file():
        raise ConfigError("config file not found", file=str(config))
    given = {k: v for k, v in flags.items() if v is not None}
    loading = _Loading(environ=env, config=config)
    token = _LOADING.set(loading)
    try:
        settings = EdgeSettings(**given)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        raise ConfigError(
            f"not valid TOML: {exc}", file=str(config), line=int(line[1]) if line else None
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", file=str(config)) from None
    except ValidationError as exc:
        # `from None`: the pydantic error holds the raw input, passwords included.
        raise _config_error(exc, given, env, loading) from None
    finally:
        _LOADING.reset(token)
    if not settings.registries:
        raise ConfigError("at least one --registry is needed (or FLOORWALKER_REGISTRIES)")
    return settings


def _config_error(
    exc: ValidationError, flags: Mapping[str, Any], environ: Mapping[str, str], loading: _Loading
) -> ConfigError:
    """One sentence per problem, each naming the flag, variable or file key it came from."""
    file_data: Mapping[str, Any] = loading.toml.toml_data if loading.toml is not None else {}
    env_names = {name.lower(): name for name in environ}
    in_file: list[str] = []
    elsewhere: list[str] = []
    for error in exc.errors(include_url=False):
        key = str(error["loc"][0]) if error["loc"] else ""
        env_name = env_names.get((ENV_PREFIX + key).lower())
        if key in flags:
            elsewhere.append(
                f"{_FLAG_NAMES.get(key, '--' + key.replace('_', '-'))}: {_describe(error)}"
            )
        elif env_name is not None:
            elsewhere.append(f"{env_name}: {_describe(error)}")
        elif key in file_data and error["type"] == "extra_forbidden":
            in_file.append(f"unknown setting `{key}`{_suggest(key)}")
        elif key in file_data:
            in_file.append(f"{key}: {_describe(error)}")
        else:
            elsewhere.append(f"{key}: {_describe(error)}")
    if in_file and not elsewhere:
        return ConfigError("; ".join(in_file), file=str(loading.config))
    return ConfigError("; ".join([*elsewhere, *(f"{loading.config}: {m}" for m in in_file)]))


_MESSAGES = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_type": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "string_type": "must be text",
    "path_type": "must be a path",
    "tuple_type": "must be a list of paths",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
}


def _describe(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown setting"
    ctx = error.get("ctx") or {}
    if error["type"] == "value_error" and "error" in ctx:
        what = str(ctx["error"])
    elif error["type"] in _MESSAGES:
        what = _MESSAGES[error["type"]].format(**ctx)
    else:
        what = error["msg"]
    shown = error["input"]
    if isinstance(shown, str | int | float) and not isinstance(shown, bool):
        text = redact_url(shown) if isinstance(shown, str) else shown
        what = f"{what}, got {text!r}"
    if len(error["loc"]) > 1:
        what = f"item {error['loc'][1]}: {what}"
    return what


def _suggest(key: str) -> str:
    match = difflib.get_close_matches(key.lower(), list(EdgeSettings.model_fields), n=1)
    return f" (did you mean `{match[0]}`?)" if match else ""
