"""Broker identities and ACLs generated from the store registries (``floorwalker broker-config``).

Every device of every registry gets its own MQTT identity, and the broker lets
each one do exactly what the wire contract gives it, nothing else::

    gateway   write  {p}/{store}/beacon/{itself}, {p}/{store}/device/{itself}/status
    bell      write  {p}/{store}/bell/{itself},   {p}/{store}/device/{itself}/status
    terminal  write  {p}/{store}/pos/{itself},    {p}/{store}/device/{itself}/status
    band      write  {p}/{store}/band/{itself}/ack, {p}/{store}/device/{itself}/status
              read   {p}/{store}/band/{itself}/alert
    engine    read   every inbound topic of every store;
              write  offers, alerts and dead letters of every store
    shopper   read   {p}/+/shopper/{itself}/offer            (one ``pattern`` line)

**Usernames are the device ids** (so device ids must be unique across the
registries of one broker), and each device gets its own ``user`` block in the
ACL file, naming its store and its own topics literally. A ``pattern`` line
with ``%u`` would be shorter, but Mosquitto applies patterns to *every* user: a
gateway's pattern would let a band named like a gateway publish sightings, and
any pattern leaves the store a ``+``. Per-user blocks cost one block per
device (hundreds per store), which is nothing. Shoppers are the exception: there
are millions, so they share one pattern, ``pattern read {p}/+/shopper/%u/offer``,
with ``username = shopper token``.

**Shopper passwords** are derived, not stored: ``shopper_password(secret, token)``
= HMAC-SHA256(secret, token), base64url, 32 characters. The engine's operator
keeps one secret; the app backend hands each app its password when the app
gets its token; nothing per shopper needs provisioning on the broker side *if*
the broker checks the HMAC itself (mosquitto-go-auth, a dynamic-security or
auth plugin; see docs/security.md). Mosquitto's own password file cannot do
that, so for the project's broker (tests, demo, a small store) the password
file holds the tokens of a profiles file (``--profiles``).

Two more identities exist only when asked for, never in production:
``test-harness`` (``--test-harness``: read and write everything, for the
integration tests' probe, which plays every device at once) and
``store-simulator`` (``--simulator``: every *device* topic of its stores, and
reading their offers and alerts, for ``floorwalker demo`` and ``simulate --mqtt``;
it cannot forge an offer or an alert).

Files written to ``--out DIR``:

* ``mosquitto.conf`` -- listener(s), ``allow_anonymous false``, the two files
  below, persistence in ``DIR/data/`` (saved every
  :data:`AUTOSAVE_INTERVAL_S` seconds), the project's queue limits;
* ``passwd`` -- Mosquitto's password file, ``username:$7$101$salt$hash``
  (PBKDF2-SHA512, 101 iterations, 12-byte salt, as ``mosquitto_passwd`` writes);
* ``acl`` -- the ACL file;
* ``credentials.json`` (mode 0600) -- the clear passwords, to provision devices::

    {"engine": {"username": ..., "password": ...},
     "devices": {"<device id>": {"username": ..., "password": ..., "store": ..., "kind": ...}},
     "shoppers": {"<token>": {"username": ..., "password": ...}},   (with --profiles)
     "test-harness": {...}, "store-simulator": {...}}             (when asked for)

* ``shopper-secret`` (0600) -- the HMAC secret (``--shopper-secret-file`` reuses one);
* with ``--tls``: ``tls/ca.crt``, ``tls/ca.key``, ``tls/server.crt``, ``tls/server.key``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from floorwalker.devices.registry import Registry
from floorwalker.devices.topics import (
    DEFAULT_PREFIX,
    ack_topic,
    alert_filter,
    alert_topic,
    beacon_topic,
    bell_topic,
    deadletter_filter,
    inbound_filters,
    is_valid_id,
    is_valid_prefix,
    offer_filter,
    pos_topic,
    status_topic,
)
from floorwalker.errors import ConfigError

ENGINE_USER = "floorwalker-engine"
TESTER_USER = "test-harness"
SIMULATOR_USER = "store-simulator"
ANY_PREFIX = "+"
"""``--prefix +``: rules that hold under any (one-level) topic prefix, for a broker
shared by tests that each use a prefix of their own."""

AUTOSAVE_INTERVAL_S = 5
"""Seconds between Mosquitto's saves of sessions, subscriptions and queued messages. A
``kill -9`` (or a power cut) of the broker loses at most this much of what it had taken;
an orderly stop saves everything. Each save writes the whole database, so not every second."""
PBKDF2_ITERATIONS = 101
"""What ``mosquitto_passwd`` uses (Mosquitto 2.0); the broker reads the count from the hash."""
SALT_BYTES = 12
SHOPPER_PASSWORD_CHARS = 32
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
_PRIVATE = 0o600


# --------------------------------------------------------------------------- secrets


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """Mosquitto's ``$7$`` hash of ``password``: PBKDF2-SHA512, as ``mosquitto_passwd`` makes."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, hashed: str) -> bool:
    """True if ``hashed`` (a ``$7$`` entry of a password file) is the hash of ``password``."""
    try:
        _, kind, rounds, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        got = hashlib.pbkdf2_hmac(
            "sha512", password.encode("utf-8"), base64.b64decode(salt), int(rounds)
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def shopper_password(secret: bytes | str, token: str) -> str:
    """The MQTT password of the shopper app with ``token``: HMAC-SHA256(secret, token).

    base64url without padding, the first 32 characters (192 bits). Deterministic,
    so an app backend (or a broker auth plugin) that knows ``secret`` can hand it
    out (or check it) without storing anything per shopper.
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not key:
        raise ValueError("the shopper secret is empty")
    mac = hmac.new(key, token.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")[:SHOPPER_PASSWORD_CHARS]


def new_password() -> str:
    """A random password (URL-safe, 32 characters, 192 bits)."""
    return secrets.token_urlsafe(24)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- identities


@dataclass(frozen=True)
class Identity:
    """An MQTT username and its clear password (never shown by ``repr``)."""

    username: str
    password: str = field(repr=False)

    def to_json(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}


@dataclass(frozen=True)
class DeviceIdentity(Identity):
    store: str = ""
    kinds: tuple[str, ...] = ()
    """``gateway``, ``bell``, ``terminal``, ``band`` (a device may be more than one)."""

    def to_json(self) -> dict[str, str]:
        out = super().to_json()
        out.update(store=self.store, kind="+".join(self.kinds))
        return out


@dataclass(frozen=True)
class Credentials:
    """Every identity of one broker (``credentials.json``)."""

    engine: Identity
    devices: Mapping[str, DeviceIdentity]
    shoppers: Mapping[str, Identity] = field(default_factory=dict)
    tester: Identity | None = None
    simulator: Identity | None = None

    def everyone(self) -> list[Identity]:
        extra = [i for i in (self.tester, self.simulator) if i is not None]
        return [self.engine, *extra, *self.devices.values(), *self.shoppers.values()]

    def identity(self, who: str) -> Identity:
        """``engine``, ``test-harness``, ``store-simulator``, a device id or a shopper token."""
        if who in ("engine", ENGINE_USER):
            return self.engine
        if who == TESTER_USER and self.tester is not None:
            return self.tester
        if who == SIMULATOR_USER and self.simulator is not None:
            return self.simulator
        found = self.devices.get(who) or self.shoppers.get(who)
        if found is None:
            raise KeyError(f"no identity {who!r} in these credentials")
        return found

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "engine": self.engine.to_json(),
            "devices": {d: ident.to_json() for d, ident in sorted(self.devices.items())},
        }
        if self.shoppers:
            out["shoppers"] = {t: ident.to_json() for t, ident in sorted(self.shoppers.items())}
        if self.tester is not None:
            out[TESTER_USER] = self.tester.to_json()
        if self.simulator is not None:
            out[SIMULATOR_USER] = self.simulator.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Credentials:
        def ident(obj: Mapping[str, Any]) -> Identity:
            return Identity(str(obj["username"]), str(obj["password"]))

        def device(obj: Mapping[str, Any]) -> DeviceIdentity:
            kinds = tuple(k for k in str(obj.get("kind", "")).split("+") if k)
            return DeviceIdentity(
                str(obj["username"]), str(obj["password"]), str(obj.get("store", "")), kinds
            )

        tester, simulator = data.get(TESTER_USER), data.get(SIMULATOR_USER)
        return cls(
            engine=ident(data["engine"]),
            devices={d: device(o) for d, o in data.get("devices", {}).items()},
            shoppers={t: ident(o) for t, o in data.get("shoppers", {}).items()},
            tester=ident(tester) if tester else None,
            simulator=ident(simulator) if simulator else None,
        )


def load_credentials(path: Path) -> Credentials:
    """Read a ``credentials.json``; :class:`ConfigError` if it is not one."""
    try:
        return Credentials.from_json(orjson.loads(path.read_bytes()))
    except OSError as exc:
        raise ConfigError(f"cannot read credentials: {exc.strerror}", file=str(path)) from None
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise ConfigError("not a credentials.json of broker-config", file=str(path)) from None


def _device_kinds(registry: Registry) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for kind, ids in (
        ("gateway", registry.gateways),
        ("bell", registry.bells),
        ("terminal", registry.terminals),
        ("band", registry.staff),
    ):
        for device in sorted(ids):
            kinds.setdefault(device, []).append(kind)
    return kinds


def make_credentials(
    registries: Iterable[Registry],
    *,
    shoppers: Iterable[str] = (),
    shopper_secret: bytes | str | None = None,
    tester: bool = False,
    simulator: bool = False,
) -> Credentials:
    """Random passwords for the engine and every device; derived ones for ``shoppers``."""
    devices: dict[str, DeviceIdentity] = {}
    reserved = {ENGINE_USER, TESTER_USER, SIMULATOR_USER}
    for registry in registries:
        for device, kinds in _device_kinds(registry).items():
            _check_username(device, f"store {registry.store}: device")
            if device in reserved:
                raise ConfigError(
                    f"store {registry.store}: device id {device!r} is a reserved MQTT username"
                )
            if device in devices:
                raise ConfigError(
                    f"device {device!r} is in stores {devices[device].store} and "
                    f"{registry.store}: MQTT usernames are device ids, so device ids must be "
                    "unique across the registries of one broker (or give each store its own "
                    "broker config)"
                )
            devices[device] = DeviceIdentity(device, new_password(), registry.store, tuple(kinds))
    tokens = sorted(set(shoppers))
    if tokens and shopper_secret is None:
        raise ConfigError("shopper identities need a shopper secret")
    shopper_ids: dict[str, Identity] = {}
    for token in tokens:
        _check_username(token, "shopper token")
        if token in devices or token in reserved:
            raise ConfigError(f"shopper token {token!r} is also a device or system username")
        assert shopper_secret is not None
        shopper_ids[token] = Identity(token, shopper_password(shopper_secret, token))
    return Credentials(
        engine=Identity(ENGINE_USER, new_password()),
        devices=devices,
        shoppers=shopper_ids,
        tester=Identity(TESTER_USER, new_password()) if tester else None,
        simulator=Identity(SIMULATOR_USER, new_password()) if simulator else None,
    )


def _check_username(name: str, what: str) -> None:
    # A topic level (so %u and literal topics work), no ':' (the password file's
    # separator) and no white space (the ACL file's).
    if not is_valid_id(name) or ":" in name or any(c.isspace() for c in name):
        raise ConfigError(
            f"{what} {name!r} cannot be an MQTT username: no '/', '+', '#', ':' or spaces"
        )


# --------------------------------------------------------------------------- files' text


def password_file_text(credentials: Credentials) -> str:
    """Mosquitto's password file: one ``username:$7$...`` line per identity."""
    return "".join(f"{i.username}:{hash_password(i.password)}\n" for i in credentials.everyone())


def _check_prefix(prefix: str) -> None:
    if prefix != ANY_PREFIX and not is_valid_prefix(prefix):
        raise ConfigError(f"--prefix must be topic levels without wildcards (or +), got {prefix!r}")


def _in(prefix: str, topic: str) -> str:
    """``topic``, built by the topic builders under ``fw``, under ``prefix`` (``+`` allowed)."""
    assert topic.startswith(DEFAULT_PREFIX + "/")
    return prefix + topic[len(DEFAULT_PREFIX) :]


def acl_text(
    registries: Sequence[Registry], credentials: Credentials, *, prefix: str = DEFAULT_PREFIX
) -> str:
    """Mosquitto's ACL file for ``credentials`` (anonymous clients get no line: nothing)."""
    _check_prefix(prefix)
    p = DEFAULT_PREFIX  # topics are built under it, then moved under ``prefix``
    own_offers = offer_filter(prefix=p).replace("/shopper/+/", "/shopper/%u/")
    lines = [
        "# Generated by `floorwalker broker-config`; regenerate rather than edit.",
        "# A client may do what a line for its username (or a pattern) allows, nothing else.",
        "",
        "# Shopper apps (username = app token): their own offers, in any store.",
        f"pattern read {_in(prefix, own_offers)}",
        "",
        "# The engine: every device's messages in, offers, alerts and dead letters out.",
        f"user {credentials.engine.username}",
        *(f"topic read {_in(prefix, f)}" for f in inbound_filters(prefix=p)),
        f"topic write {_in(prefix, offer_filter(prefix=p))}",
        f"topic write {_in(prefix, alert_filter(prefix=p))}",
        f"topic write {_in(prefix, deadletter_filter(prefix=p))}",
    ]
    if credentials.tester is not None:
        lines += [
            "",
            "# TEST HARNESS ONLY (--test-harness): everything. Never in production.",
            f"user {credentials.tester.username}",
            "topic readwrite #",
        ]
    if credentials.simulator is not None:
        lines += ["", "# The store simulator (--simulator): plays every device, forges no action."]
        lines.append(f"user {credentials.simulator.username}")
        for registry in registries:
            store = registry.store
            lines += [
                f"topic write {_in(prefix, f)}" for f in inbound_filters(prefix=p, store=store)
            ]
            lines.append(f"topic read {_in(prefix, offer_filter(prefix=p, store=store))}")
            lines.append(f"topic read {_in(prefix, alert_filter(prefix=p, store=store))}")
    builders = {
        "gateway": beacon_topic,
        "bell": bell_topic,
        "terminal": pos_topic,
        "band": ack_topic,
    }
    for device, ident in sorted(credentials.devices.items()):
        store = ident.store
        lines += ["", f"# {store}: {'+'.join(ident.kinds)} {device}", f"user {ident.username}"]
        for kind in ident.kinds:
            lines.append(f"topic write {_in(prefix, builders[kind](store, device, prefix=p))}")
        lines.append(f"topic write {_in(prefix, status_topic(store, device, prefix=p))}")
        if "band" in ident.kinds:
            lines.append(f"topic read {_in(prefix, alert_topic(store, device, prefix=p))}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    ca_key: Path | None = None


def generate_tls(directory: Path, hosts: Sequence[str] = ()) -> TlsFiles:
    """A CA and a server certificate it signs, for ``localhost``, 127.0.0.1, ::1 and ``hosts``.

    EC P-256 keys (files 0600), SHA-256 signatures; the CA for 10 years, the
    server certificate for 825 days (what clients accept at most).
    """
    from cryptography import x509  # noqa: PLC0415 - only for --tls
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Floorwalker broker CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for host in ("127.0.0.1", "::1", *hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    common = hosts[0] if hosts else "localhost"
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files = TlsFiles(
        ca_cert=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        ca_key=directory / "ca.key",
    )

    def private(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    files.ca_cert.write_bytes(ca_cert.public_bytes(pem))
    files.server_cert.write_bytes(cert.public_bytes(pem))
    assert files.ca_key is not None
    _write_private(files.ca_key, private(ca_key))
    _write_private(files.server_key, private(key))
    return files


# --------------------------------------------------------------------------- the config


@dataclass(frozen=True)
class BrokerAuth:
    """What a Mosquitto config needs to authenticate and authorise (see :func:`auth_lines`)."""

    password_file: Path
    acl_file: Path
    tls: TlsFiles | None = None


def auth_lines(auth: BrokerAuth) -> list[str]:
    """The global lines: nobody anonymous, the password file, the ACL file.

    ``per_listener_settings`` stays false: one set of identities and ACLs for
    every listener (plain and TLS), so a client is the same whichever it uses.
    """
    return [
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {auth.password_file.resolve()}",
        f"acl_file {auth.acl_file.resolve()}",
    ]


def tls_listener_lines(tls: TlsFiles, port: int, host: str | None) -> list[str]:
    """A TLS listener (last in a config: the lines after ``listener`` belong to it)."""
    return [
        f"listener {port}{' ' + host if host else ''}",
        f"cafile {tls.ca_cert.resolve()}",
        f"certfile {tls.server_cert.resolve()}",
        f"keyfile {tls.server_key.resolve()}",
        "tls_version tlsv1.2",
    ]


@dataclass(frozen=True)
class BrokerConfig:
    """What :func:`write_broker_config` wrote."""

    directory: Path
    config: Path
    auth: BrokerAuth
    credentials_file: Path
    credentials: Credentials
    shopper_secret_file: Path
    port: int
    tls_port: int | None


def read_shopper_tokens(path: Path) -> list[str]:
    """The ``shopper`` tokens of a profiles JSON Lines file."""
    tokens: list[str] = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read profiles: {exc.strerror}", file=str(path)) from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            token = obj["shopper"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(
                "not a profile with a `shopper`", file=str(path), line=number
            ) from None
        if not isinstance(token, str):
            raise ConfigError("`shopper` must be a string token", file=str(path), line=number)
        tokens.append(token)
    return tokens


def write_broker_config(
    registries: Sequence[Registry],
    out: Path,
    *,
    port: int = DEFAULT_PORT,
    bind: str | None = None,
    tls: bool = False,
    tls_port: int = DEFAULT_TLS_PORT,
    tls_hosts: Sequence[str] = (),
    tls_bind: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    shoppers: Iterable[str] = (),
    shopper_secret_file: Path | None = None,
    tester: bool = False,
    simulator: bool = False,
    run_as: str | None = None,
) -> BrokerConfig:
    """Write mosquitto.conf, passwd, acl, credentials.json (and TLS files) into ``out``.

    ``bind``: the address of the listeners (None: every address); ``tls_bind`` the
    TLS listener's, when it differs (the plain one on loopback, TLS on the LAN).
    """
    _check_prefix(prefix)
    if not registries:
        raise ConfigError("broker-config needs at least one --registry")
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    secret_file = out / "shopper-secret"
    if shopper_secret_file is not None:
        secret = shopper_secret_file.read_bytes().strip()
        if not secret:
            raise ConfigError("the shopper secret file is empty", file=str(shopper_secret_file))
        if shopper_secret_file.resolve() != secret_file:
            _write_private(secret_file, secret + b"\n")
    elif secret_file.exists():
        secret = secret_file.read_bytes().strip()  # keep the apps' passwords across reruns
    else:
        secret = secrets.token_urlsafe(32).encode("ascii")
        _write_private(secret_file, secret + b"\n")
    credentials = make_credentials(
        registries, shoppers=shoppers, shopper_secret=secret, tester=tester, simulator=simulator
    )
    auth = BrokerAuth(out / "passwd", out / "acl")
    _write_private(auth.password_file, password_file_text(credentials).encode("utf-8"))
    auth.acl_file.write_text(acl_text(registries, credentials, prefix=prefix), encoding="utf-8")
    creds = out / "credentials.json"
    _write_private(creds, orjson.dumps(credentials.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
    if tls:
        auth = BrokerAuth(auth.password_file, auth.acl_file, generate_tls(out / "tls", tls_hosts))
    data = out / "data"
    data.mkdir(exist_ok=True)
    stores = ", ".join(r.store for r in registries)
    lines = [
        f"# Generated by `floorwalker broker-config` for {stores}; regenerate rather than edit.",
        "# Identities: passwd (hashes), credentials.json (clear, 0600). Rules: acl.",
        f"listener {port}{' ' + bind if bind else ''}",
        *auth_lines(auth),
        "persistence true",
        f"persistence_location {data}/",
        f"autosave_interval {AUTOSAVE_INTERVAL_S}",
        "set_tcp_nodelay true",
        "max_queued_messages 100000",
        "max_queued_bytes 0",
        "max_inflight_messages 20",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
    ]
    if run_as is not None:
        lines.append(f"user {run_as}")
    if auth.tls is not None:
        lines += tls_listener_lines(auth.tls, tls_port, tls_bind or bind)
    config = out / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return BrokerConfig(
        directory=out,
        config=config,
        auth=auth,
        credentials_file=creds,
        credentials=credentials,
        shopper_secret_file=secret_file,
        port=port,
        tls_port=tls_port if tls else None,
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (created 0600, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), _PRIVATE)  # an existing file keeps its mode otherwise
        f.write(data)
