"""broker_config: password hashes, shopper passwords, identities, ACL text, the files written."""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from floorwalker import cli
from floorwalker.devices.broker_config import (
    ENGINE_USER,
    Credentials,
    acl_text,
    hash_password,
    load_credentials,
    make_credentials,
    read_shopper_tokens,
    shopper_password,
    verify_password,
    write_broker_config,
)
from floorwalker.devices.registry import Registry, load_registry
from floorwalker.errors import ConfigError
from tests.engine.conftest import STORE


def _registry(tmp_path: Path, **changes: Any) -> Registry:
    raw = {**STORE, **changes}
    path = tmp_path / f"{raw['store']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_registry(path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- secrets


def test_password_hash_is_mosquittos_pbkdf2_sha512_format() -> None:
    hashed = hash_password("s3cret", salt=b"0123456789ab")
    empty, kind, rounds, salt, digest = hashed.split("$")
    assert (empty, kind, rounds) == ("", "7", "101")
    assert base64.b64decode(salt) == b"0123456789ab"
    assert len(base64.b64decode(digest)) == 64  # SHA-512
    assert verify_password("s3cret", hashed)
    assert not verify_password("s3cret!", hashed)
    assert not verify_password("s3cret", "$6$not$ours")
    assert hash_password("s3cret") != hash_password("s3cret"), "a fresh salt every time"


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="no mosquitto_passwd")
def test_hashes_agree_with_mosquitto_passwd(tmp_path: Path) -> None:
    """mosquitto_passwd's hash verifies with ours (the broker accepting ours: the integration
    tests, which all log in with Python-made hashes)."""
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "gw-1", "pa55"], check=True)
    user, hashed = path.read_text().strip().split(":", 1)
    assert user == "gw-1" and hashed.startswith("$7$101$")
    assert verify_password("pa55", hashed)


def test_shopper_password_is_an_hmac_of_the_token() -> None:
    one = shopper_password(b"server-secret", "app-loyal")
    assert one == shopper_password("server-secret", "app-loyal"), "deterministic"
    assert len(one) == 32 and one.replace("-", "").replace("_", "").isalnum()
    assert one != shopper_password(b"server-secret", "app-vip")
    assert one != shopper_password(b"another-secret", "app-loyal")
    with pytest.raises(ValueError, match="empty"):
        shopper_password(b"", "app-loyal")


# --------------------------------------------------------------------------- identities


def test_every_device_gets_an_identity_named_after_it(tmp_path: Path) -> None:
    creds = make_credentials([_registry(tmp_path)], shoppers=["app-1"], shopper_secret=b"k")
    assert set(creds.devices) == {
        "gw-1", "gw-2", "bell-dairy", "bell-appl", "pos-1", "band-07", "band-08", "band-01",
    }  # fmt: skip
    assert all(d == ident.username for d, ident in creds.devices.items())
    assert creds.devices["pos-1"].kinds == ("terminal",) and creds.devices["pos-1"].store == "s001"
    passwords = [i.password for i in creds.everyone()]
    assert len(set(passwords)) == len(passwords), "every password its own"
    assert creds.shoppers["app-1"].password == shopper_password(b"k", "app-1")
    assert creds.tester is None and creds.simulator is None
    assert creds.engine.password not in repr(creds)


def test_credentials_round_trip_through_json(tmp_path: Path) -> None:
    creds = make_credentials([_registry(tmp_path)], tester=True, simulator=True)
    again = Credentials.from_json(orjson.loads(orjson.dumps(creds.to_json())))
    assert again == creds
    assert again.identity("engine") == creds.engine
    assert again.identity("band-07") == creds.devices["band-07"]
    with pytest.raises(KeyError):
        again.identity("nobody")


def test_device_ids_must_be_unique_across_the_registries_of_a_broker(tmp_path: Path) -> None:
    one = _registry(tmp_path)
    two = _registry(tmp_path, store="s002")
    with pytest.raises(ConfigError, match=r"device '[a-z0-9-]+' is in stores s001 and s002"):
        make_credentials([one, two])


def test_reserved_and_unusable_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reserved"):
        make_credentials([_registry(tmp_path, terminals=[ENGINE_USER])])
    with pytest.raises(ConfigError, match="cannot be an MQTT username"):
        make_credentials([_registry(tmp_path, gateways=["gw:1"])])
    with pytest.raises(ConfigError, match="cannot be an MQTT username"):
        make_credentials([_registry(tmp_path)], shoppers=["a b"], shopper_secret=b"k")
    with pytest.raises(ConfigError, match="also a device"):
        make_credentials([_registry(tmp_path)], shoppers=["gw-1"], shopper_secret=b"k")
    with pytest.raises(ConfigError, match="secret"):
        make_credentials([_registry(tmp_path)], shoppers=["app-1"])


# --------------------------------------------------------------------------- ACL


def _block(text: str, user: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"user {user}") + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("topic "):
            break
        block.append(line)
    return block


def test_acl_gives_each_device_its_own_topics_only(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    creds = make_credentials([registry], tester=True, simulator=True)
    text = acl_text([registry], creds, prefix="acme/fw")
    assert _block(text, "gw-1") == [
        "topic write acme/fw/s001/beacon/gw-1",
        "topic write acme/fw/s001/device/gw-1/status",
    ]
    assert _block(text, "bell-dairy") == [
        "topic write acme/fw/s001/bell/bell-dairy",
        "topic write acme/fw/s001/device/bell-dairy/status",
    ]
    assert _block(text, "pos-1") == [
        "topic write acme/fw/s001/pos/pos-1",
        "topic write acme/fw/s001/device/pos-1/status",
    ]
    assert _block(text, "band-07") == [
        "topic write acme/fw/s001/band/band-07/ack",
        "topic write acme/fw/s001/device/band-07/status",
        "topic read acme/fw/s001/band/band-07/alert",
    ]
    assert _block(text, ENGINE_USER) == [
        "topic read acme/fw/+/beacon/+",
        "topic read acme/fw/+/bell/+",
        "topic read acme/fw/+/pos/+",
        "topic read acme/fw/+/band/+/ack",
        "topic read acme/fw/+/device/+/status",
        "topic write acme/fw/+/shopper/+/offer",
        "topic write acme/fw/+/band/+/alert",
        "topic write acme/fw/+/deadletter",
    ]
    assert _block(text, "test-harness") == ["topic readwrite #"]
    simulator = _block(text, "store-simulator")
    assert "topic write acme/fw/s001/beacon/+" in simulator
    assert not [
        line for line in simulator if "write" in line and ("offer" in line or "alert" in line)
    ]
    patterns = [line for line in text.splitlines() if line.startswith("pattern")]
    assert patterns == ["pattern read acme/fw/+/shopper/%u/offer"]
    # Before the first `user` line a topic would apply to anonymous clients: none there.
    head = text.split("\nuser ", 1)[0]
    assert not [line for line in head.splitlines() if line.startswith("topic")]


def test_acl_under_any_prefix(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    text = acl_text([registry], make_credentials([registry]), prefix="+")
    assert "topic write +/s001/beacon/gw-1" in text
    assert "pattern read +/+/shopper/%u/offer" in text
    with pytest.raises(ConfigError, match="prefix"):
        acl_text([registry], make_credentials([registry]), prefix="fw/#")


# --------------------------------------------------------------------------- files


def test_cli_writes_config_passwords_acl_credentials_and_tls(tmp_path: Path) -> None:
    registry = tmp_path / "store.yaml"
    registry.write_text(yaml.safe_dump(STORE, sort_keys=False), encoding="utf-8")
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_bytes(b'{"shopper": "app-1", "tier": "gold"}\n\n{"shopper": "app-2"}\n')
    out = tmp_path / "broker"
    argv = ["broker-config", "--registry", str(registry), "--out", str(out), "--tls"]
    assert cli.main([*argv, "--port", "1884", "--profiles", str(profiles)]) == 0

    conf = (out / "mosquitto.conf").read_text().splitlines()
    assert "listener 1884" in conf and "listener 8883" in conf
    assert conf.index("listener 8883") > conf.index(f"acl_file {out.resolve() / 'acl'}")
    assert {"allow_anonymous false", "persistence true", "autosave_interval 5"} <= set(conf)
    assert f"persistence_location {out.resolve() / 'data'}/" in conf
    assert f"cafile {out.resolve() / 'tls' / 'ca.crt'}" in conf
    assert "allow_anonymous true" not in conf

    creds = load_credentials(out / "credentials.json")
    raw = orjson.loads((out / "credentials.json").read_bytes())
    assert set(raw) == {"engine", "devices", "shoppers"}
    assert set(raw["devices"]["band-07"]) == {"username", "password", "store", "kind"}
    assert set(creds.shoppers) == {"app-1", "app-2"}
    hashes = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    assert set(hashes) == {i.username for i in creds.everyone()}
    assert all(verify_password(i.password, hashes[i.username]) for i in creds.everyone())
    for secret in ("passwd", "credentials.json", "shopper-secret", "tls/server.key", "tls/ca.key"):
        assert _mode(out / secret) == 0o600, secret

    # Again: new device passwords, the same shopper secret (apps keep their passwords).
    assert cli.main([*argv, "--profiles", str(profiles)]) == 0
    again = load_credentials(out / "credentials.json")
    assert again.shoppers == creds.shoppers
    assert again.devices["gw-1"].password != creds.devices["gw-1"].password


def test_shopper_secret_file_is_reused(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    secret = tmp_path / "secret"
    secret.write_bytes(b"the-chain-wide-secret\n")
    config = write_broker_config(
        [registry], tmp_path / "b", shoppers=["app-1"], shopper_secret_file=secret
    )
    want = shopper_password(b"the-chain-wide-secret", "app-1")
    assert config.credentials.shoppers["app-1"].password == want


def test_profiles_tokens_are_read_and_bad_lines_named(tmp_path: Path) -> None:
    good = tmp_path / "p.jsonl"
    good.write_bytes(b'{"shopper": "a"}\n{"shopper": "b"}\n')
    assert read_shopper_tokens(good) == ["a", "b"]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"shopper": "a"}\n{"tier": "gold"}\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2"):
        read_shopper_tokens(bad)
