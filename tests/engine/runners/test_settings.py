"""Edge runner settings: flags > FLOORWALKER_* env > TOML file > defaults, and the errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from floorwalker.cli import _parser
from floorwalker.engine.runners.broker import redact_url
from floorwalker.engine.runners.settings import EdgeSettings, load_settings, parse_interval
from floorwalker.errors import ConfigError

REG = Path("stores/s001.yaml")


def toml(tmp_path: Path, text: str, name: str = "edge.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run_flags(argv: list[str]) -> dict[str, Any]:
    """The flags `floorwalker run` hands to load_settings (as cli._cmd_run does)."""
    args = _parser().parse_args(["run", *argv])
    flags = {k: v for k, v in vars(args).items() if k not in ("func", "config")}
    if flags.get("registries"):
        flags["registries"] = tuple(flags["registries"])
    return flags


# --------------------------------------------------------------------------- precedence


def test_defaults_when_nothing_else_is_given() -> None:
    s = load_settings({"registries": (REG,)}, environ={})
    assert s == EdgeSettings(registries=(REG,))
    assert s.mqtt == "mqtt://127.0.0.1:1883"
    assert s.redis is None
    assert s.rules == Path("rules")
    assert s.queue_size == 1000  # the link waits when full: the broker holds the backlog
    assert s.shed_sightings_after_s == 30.0 and s.redis_budget_s == 0.05
    assert s.snapshot_every_s == 1.0
    assert s.mqtt_host_port == ("127.0.0.1", 1883)


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    config = toml(
        tmp_path,
        'mqtt = "mqtt://file:1001"\n'
        'prefix = "file"\n'
        'client_id = "file-edge"\n'
        "queue_size = 30\n"
        'registries = ["from-file.yaml"]\n',
    )
    environ = {
        "FLOORWALKER_MQTT": "mqtt://env:1002",
        "FLOORWALKER_PREFIX": "env",
        "FLOORWALKER_QUEUE_SIZE": "20",
    }
    flags = {"mqtt": "mqtt://flag:1003", "prefix": None, "queue_size": None}
    s = load_settings(flags, environ=environ, config=config)
    assert s.mqtt == "mqtt://flag:1003"  # flag over env and file
    assert s.mqtt_host_port == ("flag", 1003)
    assert s.prefix == "env"  # None = flag not given; env over file
    assert s.queue_size == 20
    assert s.client_id == "file-edge"  # file over default
    assert s.registries == (Path("from-file.yaml"),)
    assert s.redis_prefix == "fw:"  # default


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    config = toml(tmp_path, 'registries = ["a.yaml"]\nmetrics_port = 9108\n')
    s = load_settings({}, environ={"FLOORWALKER_CONFIG": str(config)})
    assert s.metrics_port == 9108
    other = toml(tmp_path, 'registries = ["b.yaml"]\n', name="other.toml")
    # --config wins over FLOORWALKER_CONFIG
    s = load_settings({}, environ={"FLOORWALKER_CONFIG": str(config)}, config=other)
    assert s.registries == (Path("b.yaml"),)
    assert s.metrics_port is None


def test_cli_flags_reach_the_settings() -> None:
    flags = run_flags(
        ["--registry", "a.yaml", "--registry", "b.yaml", "--lateness", "2s", "--metrics-port", "0"]
    )
    s = load_settings(flags, environ={"FLOORWALKER_LATENESS_S": "9", "FLOORWALKER_RULES": "r/"})
    assert s.registries == (Path("a.yaml"), Path("b.yaml"))
    assert s.lateness_s == 2.0
    assert s.metrics_port == 0
    assert s.rules == Path("r")


def test_snapshot_every_flag_takes_durations() -> None:
    assert run_flags(["--snapshot-every", "500ms"])["snapshot_every_s"] == 0.5
    assert run_flags(["--snapshot-every", "1s"])["snapshot_every_s"] == 1.0
    assert run_flags(["--snapshot-every", "0"])["snapshot_every_s"] == 0.0
    assert run_flags([])["snapshot_every_s"] is None
    flags = run_flags(["--registry", "a.yaml", "--snapshot-every", "250ms"])
    env = {"FLOORWALKER_SNAPSHOT_EVERY_S": "5"}
    assert load_settings(flags, environ=env).snapshot_every_s == 0.25


def test_snapshot_every_flag_refuses_a_non_duration(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--snapshot-every", "soon"])
    assert "--snapshot-every" in capsys.readouterr().err


# --------------------------------------------------------------------------- env casts


def test_env_strings_are_cast_to_the_field_types() -> None:
    environ = {
        "FLOORWALKER_REGISTRIES": f"a.yaml,b.yaml{os.pathsep}c.yaml",
        "FLOORWALKER_METRICS_PORT": "9108",
        "FLOORWALKER_QUEUE_SIZE": "500",
        "FLOORWALKER_LATENESS_S": "1.5",
        "FLOORWALKER_RELOAD_POLL_S": "250ms",
        "FLOORWALKER_DEVICE_SILENCE_S": "5m",
        "FLOORWALKER_SNAPSHOT_EVERY_S": "0",
        "FLOORWALKER_PROFILES": "p.jsonl",
        "FLOORWALKER_REDIS": "redis://127.0.0.1:6379/2",
    }
    s = load_settings({}, environ=environ)
    assert s.registries == (Path("a.yaml"), Path("b.yaml"), Path("c.yaml"))
    assert s.metrics_port == 9108
    assert s.queue_size == 500
    assert s.lateness_s == 1.5
    assert s.reload_poll_s == 0.25
    assert s.device_silence_s == 300.0
    assert s.snapshot_every_s == 0.0
    assert s.profiles == Path("p.jsonl")
    assert s.redis == "redis://127.0.0.1:6379/2"


def test_env_names_are_case_insensitive_and_others_ignored() -> None:
    s = load_settings(
        {}, environ={"floorwalker_registries": "a.yaml", "FLOORWALKER_NOT_A_SETTING": "x"}
    )
    assert s.registries == (Path("a.yaml"),)


def test_registries_as_a_single_string_in_the_file(tmp_path: Path) -> None:
    s = load_settings({}, environ={}, config=toml(tmp_path, 'registries = "one.yaml"\n'))
    assert s.registries == (Path("one.yaml"),)


def test_direct_construction_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOORWALKER_QUEUE_SIZE", "7")
    monkeypatch.setenv("FLOORWALKER_MQTT", "mqtt://from-env:1")
    s = EdgeSettings(mqtt="mqtt://h:1883", registries=(REG,), rules=Path("r"))
    assert s.queue_size == 1000  # the link waits when full: the broker holds the backlog
    assert s.shed_sightings_after_s == 30.0 and s.redis_budget_s == 0.05
    assert s.mqtt == "mqtt://h:1883"
    # load_settings without `environ` reads os.environ
    assert load_settings({"registries": (REG,)}).queue_size == 7


# --------------------------------------------------------------------------- errors


def test_a_registry_is_required() -> None:
    with pytest.raises(ConfigError, match=r"at least one --registry is needed"):
        load_settings({}, environ={})
    with pytest.raises(ConfigError, match=r"FLOORWALKER_REGISTRIES"):
        load_settings({}, environ={"FLOORWALKER_REGISTRIES": ""})


def test_unknown_key_in_the_file_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    config = toml(tmp_path, 'registries = ["a.yaml"]\nmetrics_prot = 9108\n')
    with pytest.raises(ConfigError) as info:
        load_settings({}, environ={}, config=config)
    assert info.value.file == str(config)
    assert str(info.value) == (
        f"{config}: unknown setting `metrics_prot` (did you mean `metrics_port`?)"
    )


def test_bad_toml_syntax_names_the_file_and_line(tmp_path: Path) -> None:
    config = toml(tmp_path, 'registries = ["a.yaml"]\nmqtt = \n')
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_settings({}, environ={}, config=config)
    assert info.value.file == str(config)
    assert info.value.line == 2
    assert str(info.value).startswith(f"{config}:2: ")


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="config file not found") as info:
        load_settings({}, environ={"FLOORWALKER_CONFIG": str(missing)})
    assert info.value.file == str(missing)


def test_bad_value_in_the_file_names_file_and_key(tmp_path: Path) -> None:
    config = toml(tmp_path, 'registries = ["a.yaml"]\nqueue_size = "lots"\n')
    with pytest.raises(ConfigError) as info:
        load_settings({}, environ={}, config=config)
    assert str(info.value) == f"{config}: queue_size: must be a whole number, got 'lots'"


def test_errors_name_the_flag_or_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            {"registries": (REG,), "metrics_port": 70000},
            environ={"FLOORWALKER_QUEUE_SIZE": "many", "FLOORWALKER_LATENESS_S": "soon"},
        )
    text = str(info.value)
    assert "--metrics-port: must be at most 65535, got 70000" in text
    assert "FLOORWALKER_QUEUE_SIZE: must be a whole number, got 'many'" in text
    assert "FLOORWALKER_LATENESS_S: must be a duration" in text


def test_negative_durations_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"--snapshot-every: must be at least 0"):
        load_settings({"registries": (REG,), "snapshot_every_s": -1.0}, environ={})


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1883", "127.0.0.1:1883", "mqtt://", "mqtt://host:notaport"]
)
def test_a_bad_mqtt_url_is_refused_at_load_time(url: str) -> None:
    with pytest.raises(ConfigError, match=r"--mqtt: must look like mqtt://host:port"):
        load_settings({"mqtt": url, "registries": (REG,)}, environ={})


def test_mqtt_url_from_the_environment_is_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"^FLOORWALKER_MQTT: must look like"):
        load_settings({"registries": (REG,)}, environ={"FLOORWALKER_MQTT": "http://x"})


def test_tcp_scheme_and_default_port() -> None:
    s = load_settings({"mqtt": "tcp://broker", "registries": (REG,)}, environ={})
    assert s.mqtt_host_port == ("broker", 1883)


# --------------------------------------------------------------------------- value semantics


def test_settings_are_frozen() -> None:
    s = EdgeSettings(registries=(REG,))
    with pytest.raises(ValidationError):
        s.queue_size = 1  # type: ignore[misc]
    assert hash(s) == hash(EdgeSettings(registries=(REG,)))


def test_redact_url() -> None:
    assert redact_url("mqtt://user:s3cret@host:1883") == "mqtt://user:***@host:1883"
    assert redact_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("redis://host:6379/0?password=s3cret&db=1") == (
        "redis://host:6379/0?password=***&db=1"
    )
    assert redact_url("mqtt://user@host") == "mqtt://user@host"
    assert redact_url("mqtt://host:1883") == "mqtt://host:1883"
    assert redact_url("mqtt://u:p@ss@host/x") == "mqtt://u:***@host/x"


def test_repr_and_str_mask_passwords() -> None:
    s = EdgeSettings(
        mqtt="mqtt://edge:s3cret@broker:1883",
        redis="redis://:hunter2@cache:6379/0",
        registries=(REG,),
    )
    for text in (repr(s), str(s)):
        assert "s3cret" not in text and "hunter2" not in text
        assert "mqtt://edge:***@broker:1883" in text
        assert "redis://:***@cache:6379/0" in text
    assert s.mqtt == "mqtt://edge:s3cret@broker:1883"  # the value itself is intact


def test_error_messages_mask_passwords() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"mqtt": "http://edge:s3cret@broker", "registries": (REG,)}, environ={})
    assert "s3cret" not in str(info.value)
    assert "http://edge:***@broker" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(ValidationError) as direct:
        EdgeSettings(mqtt="http://edge:s3cret@broker")
    assert "s3cret" not in str(direct.value)


def test_parse_interval() -> None:
    assert parse_interval("500ms") == 0.5
    assert parse_interval("1s") == 1.0
    assert parse_interval("1h30m") == 5400.0
    assert parse_interval("0.25") == 0.25
    assert parse_interval(0) == 0.0
    with pytest.raises(ValueError):
        parse_interval("-1s")
    with pytest.raises(ValueError):
        parse_interval("5 ms")


def test_floor_page_settings_from_flags_and_the_environment() -> None:
    secret = "page-token-from-the-env-0123"
    env = {"FLOORWALKER_HTTP_TOKEN": secret, "FLOORWALKER_HTTP_HOST": "0.0.0.0"}
    flags = run_flags(["--registry", "a.yaml", "--http-port", "8080", "--http-report", "r.html"])
    s = load_settings(flags, environ=env)
    assert (s.http_port, s.http_host, s.http_report) == (8080, "0.0.0.0", Path("r.html"))
    assert s.http_token is not None and s.http_token.get_secret_value() == secret
    assert secret not in repr(s) and secret not in str(s)
    assert load_settings({"registries": (REG,)}, environ={}).http_port is None
    with pytest.raises(ConfigError, match="--http-port"):
        load_settings(run_flags(["--registry", "a.yaml", "--http-port", "70000"]), environ={})
