"""The registry loader: a valid file, and a useful ConfigError for each mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from floorwalker.devices import registry as registry_module
from floorwalker.devices.registry import (
    MAX_ID_CHARS,
    MAX_REGISTRY_FILE_BYTES,
    UNREACHABLE,
    Registry,
    load_registry,
)
from floorwalker.errors import ConfigError

from .conftest import SAMPLE_YAML


def test_valid_file_loads(sample_yaml: Path) -> None:
    reg = load_registry(sample_yaml)
    assert reg.store == "s001"
    assert reg.timezone == "Asia/Shanghai"
    assert reg.tzinfo.key == "Asia/Shanghai"
    assert set(reg.zones) == {"entrance", "dairy-chilled", "coffee-bar"}
    assert reg.zones["dairy-chilled"].tags == frozenset({"chilled", "dairy"})
    assert reg.zones["dairy-chilled"].section == "grocery"
    assert reg.zones["entrance"].adjacent == ("dairy-chilled",)
    assert reg.beacons == {"b-dairy-1": "dairy-chilled", "b-door-1": "entrance"}
    assert reg.bells == {"bell-dairy": "dairy-chilled"}
    assert reg.gateways == frozenset({"gw-1", "gw-2"})
    assert reg.terminals == frozenset({"pos-1"})
    assert reg.staff["band-07"].role == "associate"
    assert reg.staff["band-07"].sections == frozenset({"grocery"})
    assert reg.staff["band-01"].name == "Wang Wei"
    assert reg.staff["band-01"].sections == frozenset()


def test_tags_and_distances(registry: Registry) -> None:
    assert registry.tags == frozenset({"entrance", "chilled", "dairy", "coffee-bar"})
    assert registry.zones_by_tag["chilled"] == frozenset({"dairy-chilled"})
    assert registry.hops("entrance", "entrance") == 0
    assert registry.hops("entrance", "dairy-chilled") == 1
    # coffee-bar lists no neighbours, but dairy-chilled names it: adjacency is symmetric.
    assert registry.hops("coffee-bar", "dairy-chilled") == 1
    assert registry.hops("entrance", "coffee-bar") == 2
    assert registry.hops("coffee-bar", "entrance") == 2


def test_unconnected_zones_are_unreachable() -> None:
    reg = Registry.from_mapping({"store": "s", "zones": {"a": {}, "b": None}})
    assert reg.hops("a", "b") == UNREACHABLE
    assert reg.timezone == "UTC"


def test_knows_device(registry: Registry) -> None:
    for dev in ("b-dairy-1", "bell-dairy", "gw-2", "pos-1", "band-01"):
        assert registry.knows_device(dev)
    assert not registry.knows_device("dairy-chilled")
    assert not registry.knows_device("gw-9")


def test_gateways_may_be_a_mapping() -> None:
    reg = Registry.from_mapping({"store": "s", "zones": {}, "gateways": {"gw-1": {"model": "x"}}})
    assert reg.gateways == frozenset({"gw-1"})


def _with(**changes: Any) -> str:
    data = yaml.safe_load(SAMPLE_YAML)
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return yaml.safe_dump(data, sort_keys=False)


BAD_FILES: list[tuple[str, str, str, int | None]] = [
    ("missing store", _with(store=None), "missing required key `store`", None),
    ("missing zones", _with(zones=None), "missing required key `zones`", None),
    ("store with wildcard", SAMPLE_YAML.replace("store: s001", "store: s+1"), "`store`", 1),
    ("numeric store", SAMPLE_YAML.replace("store: s001", "store: 17"), "`store`", 1),
    ("bad timezone", SAMPLE_YAML.replace("Asia/Shanghai", "Mars/Olympus"), "Mars/Olympus", 2),
    ("zones not a mapping", _with(zones=["a", "b"]), "`zones` must map", None),
    (
        "tags as a bare word",
        SAMPLE_YAML.replace("{tags: [coffee-bar],", "{tags: coffee-bar,"),
        "`tags` must be a list",
        6,
    ),
    (
        "adjacent to an unknown zone",
        SAMPLE_YAML.replace("adjacent: [dairy-chilled]", "adjacent: [dairy]"),
        "adjacent to unknown zone `dairy`",
        4,
    ),
    (
        "zone spec is a list",
        SAMPLE_YAML.replace("{tags: [coffee-bar], section: grocery}", "[coffee-bar]"),
        "zone `coffee-bar` must be a mapping",
        6,
    ),
    (
        "beacon in an unknown zone",
        SAMPLE_YAML.replace("b-door-1: {zone: entrance}", "b-door-1: {zone: door}"),
        "beacon `b-door-1`: zone 'door' is not a zone",
        7,
    ),
    (
        "beacon zone is a list",
        SAMPLE_YAML.replace("b-door-1: {zone: entrance}", "b-door-1: {zone: [entrance]}"),
        "beacon `b-door-1`",
        7,
    ),
    (
        "bell without a zone",
        SAMPLE_YAML.replace("bell-dairy: {zone: dairy-chilled}", "bell-dairy: dairy-chilled"),
        "bell `bell-dairy`",
        8,
    ),
    ("beacons not a mapping", _with(beacons=["b-1"]), "`beacons` must map", None),
    ("gateways not a list", SAMPLE_YAML.replace("[gw-1, gw-2]", "gw-1"), "`gateways` must be", 9),
    (
        "gateway id with a slash",
        SAMPLE_YAML.replace("[gw-1, gw-2]", "[gw-1, gw/2]"),
        "gateway id 'gw/2'",
        9,
    ),
    (
        "staff without a role",
        SAMPLE_YAML.replace(
            "band-01: {name: Wang Wei, role: manager}", "band-01: {name: Wang Wei}"
        ),
        "staff `band-01` needs at least a `role`",
        13,
    ),
    (
        "staff sections as a bare word",
        SAMPLE_YAML.replace("sections: [grocery]", "sections: grocery"),
        "`sections` must be a list",
        12,
    ),
    ("staff not a mapping", _with(staff=["band-01"]), "`staff` must map", None),
    (
        "duplicate beacon",
        SAMPLE_YAML.replace(
            "beacons:  {b-dairy-1:", "beacons:  {b-door-1: {zone: coffee-bar}, b-dairy-1:"
        ),
        "duplicate key `b-door-1`",
        7,
    ),
    (
        "a zone's place is not two numbers",
        SAMPLE_YAML.replace("{tags: [coffee-bar], section: grocery}", "{tags: [], at: [1]}"),
        "`at` of zone `coffee-bar` must be [column, row]",
        6,
    ),
    ("not YAML", SAMPLE_YAML + "  : - [\n", "not valid YAML", None),
    ("a list, not a mapping", "- store: s001\n", "a registry is a YAML mapping", 1),
    ("empty file", "", "a registry is a YAML mapping", 1),
]


@pytest.mark.parametrize(
    ("text", "message", "line"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_each_mistake_is_a_config_error_with_file_and_line(
    tmp_path: Path, text: str, message: str, line: int | None
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    err = info.value
    assert message in str(err)
    assert err.file == str(path)
    if line is not None:
        assert err.line == line
        assert err.col is not None and err.col >= 1
        assert str(err).startswith(f"{path}:{line}:{err.col}: ")


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("store: s001\nzones: {a: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_registry(path)
    assert info.value.line is not None and info.value.line >= 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read registry"):
        load_registry(tmp_path / "nope.yaml")


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(SAMPLE_YAML.replace("Li Na", "Zo\xeb").encode("latin-1"))
    with pytest.raises(ConfigError, match="cannot read registry"):
        load_registry(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"zones": {}}, "missing required key `store`"),
        ({"store": "s", "zones": {}, "timezone": "Nowhere/City"}, "unknown timezone"),
        ({"store": "s", "zones": {}, "terminals": ["pos#1"]}, "terminal id 'pos#1'"),
        ({"store": "s", "zones": {}, "staff": {"b/1": {"role": "x"}}}, "band id 'b/1'"),
        ({"store": "s", "zones": {"a": {}}, "beacons": {"b": {"zone": ["a"]}}}, "beacon `b`"),
    ],
)
def test_from_mapping_errors_name_the_source(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^<registry>: ") as info:
        Registry.from_mapping(data)
    assert message in str(info.value)
    assert info.value.line is None


def test_from_mapping_refuses_a_non_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        Registry.from_mapping(["store"])  # type: ignore[arg-type]


# -- garbled files: a ConfigError with file:line:col, never anything else -------------


def _laughs() -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{n}: &l{n} [" + ",".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, 9)]
    return SAMPLE_YAML + "\n".join(lines) + "\n"


GARBLED: list[tuple[str, bytes, str, tuple[int, int]]] = [
    ("nul", SAMPLE_YAML.replace("Li Na", "Li\x00Na").encode(), "a NUL byte", (12, 21)),
    ("control", SAMPLE_YAML.replace("gw-2", "gw\x1e2").encode(), "U+001E", (9, 20)),
    ("alias bomb", _laughs().encode(), "YAML anchors and aliases", (14, 5)),
    ("deep", (SAMPLE_YAML + "x: " + "[" * 3000 + "]" * 3000).encode(), "nested more", (14, 1003)),
    ("latin-1", SAMPLE_YAML.replace("Li Na", "Zo\xeb").encode("latin-1"), "byte 0xEB", (12, 21)),
    ("utf-16", SAMPLE_YAML.encode("utf-16"), "is UTF-16 text", (1, 1)),
    (
        "huge int",
        SAMPLE_YAML.replace("[gw-1, gw-2]", "[gw-1, 1" + "0" * 30 + "]").encode(),
        "too large a number",
        (9, 18),
    ),
    ("long id", SAMPLE_YAML.replace("gw-2", "g" * 129).encode(), "129 characters long", (9, 18)),
    ("long store", SAMPLE_YAML.replace("s001", "s" * 129).encode(), "store id", (1, 1)),
]


@pytest.mark.parametrize(
    ("data", "message", "at"), [g[1:] for g in GARBLED], ids=[g[0] for g in GARBLED]
)
def test_garbled_registries_are_config_errors_with_line_and_col(
    tmp_path: Path, data: bytes, message: str, at: tuple[int, int]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    err = info.value
    assert message in str(err)
    assert (err.line, err.col) == at, str(err)
    assert str(err).startswith(f"{path}:{at[0]}:{at[1]}: ")


def test_a_registry_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(SAMPLE_YAML + "#" * MAX_REGISTRY_FILE_BYTES, encoding="utf-8")
    with pytest.raises(ConfigError, match="over the limit of 1 MiB for a registry"):
        load_registry(path)


def test_ids_of_the_longest_length_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(SAMPLE_YAML.replace("gw-2", "g" * MAX_ID_CHARS), encoding="utf-8")
    assert "g" * MAX_ID_CHARS in load_registry(path).gateways


def test_an_unforeseen_failure_is_still_a_config_error(
    sample_yaml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RecursionError("a bug")

    monkeypatch.setattr(registry_module, "_hop_distances", boom)
    with pytest.raises(ConfigError, match=r"could not be read \(RecursionError\)") as info:
        load_registry(sample_yaml)
    assert (info.value.line, info.value.col) == (1, 1)


def test_a_zone_may_say_where_the_floor_page_draws_it() -> None:
    data = yaml.safe_load(SAMPLE_YAML)
    data["zones"]["entrance"]["at"] = [2, 0.5]
    reg = Registry.from_mapping(data)
    assert reg.zones["entrance"].at == (2.0, 0.5)
    assert reg.zones["coffee-bar"].at is None
