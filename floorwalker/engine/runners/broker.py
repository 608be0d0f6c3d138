"""Where a broker is and who we are to it: :class:`BrokerAddress`, the one MQTT URL parser.

Every client of the project (the edge runner's :class:`~floorwalker.engine.runners.mqtt.MqttLink`,
the small :class:`~floorwalker.engine.runners.mqtt.MqttClient` of simulators and
dashboards, ``floorwalker simulate --mqtt``) gets its broker from
:meth:`BrokerAddress.from_url`::

    mqtt://127.0.0.1:1883                 plain TCP (``tcp://`` too), default port 1883
    mqtts://broker.store.lan:8883         TLS (``ssl://``, ``tls://`` too), default port 8883
    mqtt://user:pass@127.0.0.1:1883       credentials as userinfo (percent-encoded)

The password may also come from a file (``--mqtt-password-file``, first line)
or be handed over directly, and the username from ``--mqtt-username``; a CA
file (``--mqtt-ca``) verifies a TLS broker whose certificate no system CA
signed. The password never shows: ``repr()``, ``str()`` and :meth:`redact` mask
it, and error messages quote URLs through
:func:`redact_url`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import SplitResult, quote, unquote, urlsplit

from floorwalker.errors import ConfigError

PLAIN_SCHEMES = ("mqtt", "tcp")
TLS_SCHEMES = ("mqtts", "ssl", "tls")
PLAIN_PORT = 1883
TLS_PORT = 8883
URL_HINT = "must look like mqtt://host:port or mqtts://host:port (optionally user:password@)"


_USERINFO_RE = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:)[^/?#]*@")
_PASSWORD_QUERY_RE = re.compile(r"(?i)(?P<head>[?&]password=)[^&#]*")


def redact_url(url: str) -> str:
    """``url`` with any password masked: ``mqtt://user:***@host:1883``."""
    url = _USERINFO_RE.sub(r"\g<head>***@", url)
    return _PASSWORD_QUERY_RE.sub(r"\g<head>***", url)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """A broker to connect to and the identity to connect with; the password never shows."""

    host: str
    port: int = PLAIN_PORT
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    """CA certificate(s) that sign the broker's certificate (TLS); None: the system's CAs."""

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("the MQTT broker address needs a host")
        if not 0 < self.port < 65536:
            raise ConfigError(f"the MQTT broker port must be 1-65535, got {self.port}")
        if self.password is not None and not self.username:
            raise ConfigError("an MQTT password needs a username (--mqtt-username or user@)")
        if self.ca_file is not None and not self.tls:
            raise ConfigError("--mqtt-ca is for a TLS broker: use an mqtts:// URL")

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        password_file: Path | None = None,
        ca_file: Path | None = None,
    ) -> BrokerAddress:
        """Parse ``url``; ``username``/``password``/``password_file`` override its userinfo.

        The password comes from at most one place: ``password``, ``password_file``
        or the URL. Raises :class:`ConfigError`, never quoting a password.
        """
        try:
            tls, parts, port = _split(url)
        except ValueError as exc:
            raise ConfigError(f"--mqtt {exc}, got {redact_url(url)!r}") from None
        assert parts.hostname is not None  # checked by _split
        url_user = unquote(parts.username) if parts.username else None
        url_password = unquote(parts.password) if parts.password is not None else None
        given = [
            name
            for name, value in (
                ("the URL", url_password),
                ("--mqtt-password-file", password_file),
                ("the password setting", password),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise ConfigError(f"give the MQTT password in one place, not in {' and '.join(given)}")
        if password_file is not None:
            password = read_password_file(password_file)
        elif password is None:
            password = url_password
        return cls(
            host=parts.hostname,
            port=port or (TLS_PORT if tls else PLAIN_PORT),
            tls=tls,
            username=username if username is not None else url_user,
            password=password,
            ca_file=ca_file,
        )

    @property
    def scheme(self) -> str:
        return "mqtts" if self.tls else "mqtt"

    def with_identity(self, username: str, password: str) -> BrokerAddress:
        """The same broker, another identity."""
        return replace(self, username=username, password=password)

    def redact(self) -> str:
        """The URL to show: ``mqtts://user:***@host:8883`` (no password, ever)."""
        user = ""
        if self.username is not None:
            user = quote(self.username, safe="") + (":***" if self.password is not None else "")
            user += "@"
        return f"{self.scheme}://{user}{_host(self.host)}:{self.port}"

    def __str__(self) -> str:
        return self.redact()

    def __repr__(self) -> str:
        ca = f", ca_file={str(self.ca_file)!r}" if self.ca_file is not None else ""
        return f"BrokerAddress({self.redact()!r}{ca})"


def check_url(url: str) -> None:
    """Raise ``ValueError`` (a message without the URL) unless ``url`` is a broker URL."""
    _split(url)


def _split(url: str) -> tuple[bool, SplitResult, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(URL_HINT) from None
    scheme = parts.scheme.lower()
    if scheme not in PLAIN_SCHEMES + TLS_SCHEMES or not parts.hostname:
        raise ValueError(URL_HINT)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(URL_HINT + ", and nothing after the port")
    return scheme in TLS_SCHEMES, parts, port


def read_password_file(path: Path) -> str:
    """The first line of ``path`` (a secret file: its contents never appear in an error)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"cannot read the MQTT password file: {what}", file=str(path)) from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(
            "the MQTT password file is empty (the password is its first line)", file=str(path)
        )
    return lines[0]


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
