"""Shared fixtures: a small store registry written the way an operator would."""

from __future__ import annotations

from pathlib import Path

import pytest

from floorwalker.devices.decode import Decoder
from floorwalker.devices.registry import Registry, load_registry

SAMPLE_YAML = """\
store: s001
timezone: Asia/Shanghai
zones:
  entrance:      {tags: [entrance], section: front, adjacent: [dairy-chilled]}
  dairy-chilled: {tags: [chilled, dairy], section: grocery, adjacent: [entrance, coffee-bar]}
  coffee-bar:    {tags: [coffee-bar], section: grocery}
beacons:  {b-dairy-1: {zone: dairy-chilled}, b-door-1: {zone: entrance}}
bells:    {bell-dairy: {zone: dairy-chilled}}
gateways: [gw-1, gw-2]
terminals: [pos-1]
staff:
  band-07: {name: Li Na, role: associate, sections: [grocery]}
  band-01: {name: Wang Wei, role: manager}
"""


@pytest.fixture
def sample_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "s001.yaml"
    path.write_text(SAMPLE_YAML, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    path = tmp_path_factory.mktemp("registry") / "s001.yaml"
    path.write_text(SAMPLE_YAML, encoding="utf-8")
    return load_registry(path)


@pytest.fixture
def decoder(registry: Registry) -> Decoder:
    return Decoder({registry.store: registry})
