"""BrokerAddress: the one MQTT URL parser; the password never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from floorwalker.engine.runners.broker import BrokerAddress
from floorwalker.engine.runners.settings import EdgeSettings, load_settings
from floorwalker.errors import ConfigError

SECRET = "s3cr%3At"  # percent-encoded in URLs: "s3cr:t"


def test_urls_and_their_defaults() -> None:
    assert BrokerAddress.from_url("mqtt://h") == BrokerAddress("h", 1883)
    assert BrokerAddress.from_url("tcp://h:1884/") == BrokerAddress("h", 1884)
    tls = BrokerAddress.from_url("mqtts://broker.lan")
    assert (tls.host, tls.port, tls.tls) == ("broker.lan", 8883, True)
    assert BrokerAddress.from_url("ssl://h:9").tls
    user = BrokerAddress.from_url(f"mqtt://gw%2F1:{SECRET}@10.0.0.2:1883")
    assert (user.username, user.password, user.host) == ("gw/1", "s3cr:t", "10.0.0.2")


@pytest.mark.parametrize(
    "url",
    ["http://h:1883", "h:1883", "mqtt://", "mqtt://h:port", "mqtt://h:1883/x", "mqtt://h?a=1"],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="must look like mqtt://host:port"):
        BrokerAddress.from_url(url)


def test_the_password_never_shows() -> None:
    address = BrokerAddress.from_url(f"mqtts://edge:{SECRET}@broker:8883")
    for text in (repr(address), str(address), address.redact()):
        assert "s3cr" not in text
    assert address.redact() == "mqtts://edge:***@broker:8883"
    assert BrokerAddress("h", 1, username="u").redact() == "mqtt://u@h:1"
    with pytest.raises(ConfigError) as caught:
        BrokerAddress.from_url(f"http://edge:{SECRET}@broker")
    assert "s3cr" not in str(caught.value) and "edge:***@broker" in str(caught.value)


def test_password_file_username_flag_and_ca(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-the-file\nignored\n")
    ca = tmp_path / "ca.crt"
    address = BrokerAddress.from_url(
        "mqtts://url-user@h", username="flag-user", password_file=secret, ca_file=ca
    )
    assert (address.username, address.password, address.ca_file) == (
        "flag-user", "from-the-file", ca,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="in one place"):
        BrokerAddress.from_url(f"mqtt://u:{SECRET}@h", password_file=secret)
    with pytest.raises(ConfigError, match="cannot read the MQTT password file"):
        BrokerAddress.from_url("mqtt://u@h", password_file=tmp_path / "missing")
    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        BrokerAddress.from_url("mqtt://u@h", password_file=tmp_path / "empty")
    with pytest.raises(ConfigError, match="mqtts://"):
        BrokerAddress.from_url("mqtt://h", ca_file=ca)
    with pytest.raises(ConfigError, match="needs a username"):
        BrokerAddress.from_url("mqtt://h", password="p")


def test_edge_settings_build_the_broker_and_mask_the_password(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("file-secret\n")
    s = EdgeSettings(mqtt="mqtts://b:8884", mqtt_username="eng", mqtt_password_file=secret)
    assert s.broker == BrokerAddress("b", 8884, tls=True, username="eng", password="file-secret")
    assert s.mqtt_host_port == ("b", 8884)
    env = {"FLOORWALKER_MQTT_PASSWORD": "env-secret", "FLOORWALKER_MQTT_USERNAME": "eng"}
    loaded = load_settings({"registries": (Path("r.yaml"),)}, environ=env)
    assert loaded.broker.password == "env-secret"
    assert "env-secret" not in repr(loaded) and "env-secret" not in str(loaded)
    with pytest.raises(ConfigError, match="in one place"):
        EdgeSettings(mqtt=f"mqtt://u:{SECRET}@h", mqtt_password="p").broker  # noqa: B018
