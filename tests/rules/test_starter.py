"""`floorwalker rules init`: a rules directory whose editor validation survives a copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from floorwalker.cli import main
from floorwalker.rules.loader import check_directory
from floorwalker.rules.schema_gen import CATALOG_DIR, INSTALLED_NAMES
from floorwalker.yamlpos import load_yaml

ROOT = Path(__file__).parents[2]
DEMO_STORE = ROOT / "floorwalker" / "simulators" / "data" / "demo-store.yaml"


def _validate_by_modeline(path: Path) -> list[str]:
    """What an editor does: follow the file's `$schema=` comment, relative to the file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    mode = next(x for x in lines if x.startswith("# yaml-language-server: $schema="))
    schema = json.loads((path.parent / mode.split("$schema=", 1)[1]).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [e.message for e in validator.iter_errors(load_yaml(path.read_text()).data)]


def test_init_writes_schemas_a_starter_rule_policy_scenario_and_editor_settings(
    tmp_path: Path,
) -> None:
    target = tmp_path / "rules"
    assert main(["rules", "init", str(target)]) == 0
    names = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert names == {
        *INSTALLED_NAMES.values(),
        "my-first-rule.yaml",
        "policy.yaml",
        "scenarios/my-first-rule.yaml",
        ".vscode/settings.json",
    }
    assert check_directory(target) == []
    # The schemas are the installed package's own, byte for byte.
    for name in INSTALLED_NAMES.values():
        assert (target / name).read_bytes() == (CATALOG_DIR / name).read_bytes()
    settings = json.loads((target / ".vscode" / "settings.json").read_text())
    assert settings["yaml.schemas"][f"./{INSTALLED_NAMES['policy']}"] == ["policy.yaml"]


def test_a_copied_directory_still_validates_in_an_editor(tmp_path: Path) -> None:
    main(["rules", "init", str(tmp_path / "a")])
    copy = tmp_path / "elsewhere" / "deeper" / "b"
    shutil.copytree(tmp_path / "a", copy)
    assert _validate_by_modeline(copy / "my-first-rule.yaml") == []
    assert _validate_by_modeline(copy / "policy.yaml") == []
    (copy / "my-first-rule.yaml").write_text(
        (copy / "my-first-rule.yaml").read_text().replace("at_least: 10s", "at_leest: 10s")
    )
    assert any("at_leest" in e for e in _validate_by_modeline(copy / "my-first-rule.yaml"))


def test_the_shipped_catalog_copied_elsewhere_still_validates(tmp_path: Path) -> None:
    copy = tmp_path / "my-catalog"
    shutil.copytree(CATALOG_DIR, copy)
    for path in sorted(copy.glob("*.yaml")):
        assert _validate_by_modeline(path) == [], path.name


def test_init_with_a_registry_completes_its_tags_and_walks_its_zones(tmp_path: Path) -> None:
    registry = tmp_path / "store.yaml"
    registry.write_text(
        DEMO_STORE.read_text().replace("{tags: [pantry]", "{tags: [pantry, wine-cellar]")
    )
    target = tmp_path / "rules"
    assert main(["rules", "init", str(target), "--registry", str(registry)]) == 0
    schema = (target / INSTALLED_NAMES["rule"]).read_text()
    assert '"wine-cellar"' in schema
    assert '"wine-cellar"' not in (CATALOG_DIR / INSTALLED_NAMES["rule"]).read_text()
    scenario = (target / "scenarios" / "my-first-rule.yaml").read_text()
    assert "at dairy-chilled for 12 s" in scenario


def test_init_again_keeps_the_marketers_files_and_refreshes_the_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["rules", "init", str(tmp_path)])
    (tmp_path / "my-first-rule.yaml").write_text("# mine\n")
    (tmp_path / "policy.yaml").write_text("# mine too\n")
    (tmp_path / INSTALLED_NAMES["rule"]).write_text("{}")
    settings = tmp_path / ".vscode" / "settings.json"
    settings.write_text(json.dumps({"editor.tabSize": 2, "yaml.schemas": {"other.json": ["x"]}}))
    capsys.readouterr()
    assert main(["rules", "init", str(tmp_path)]) == 0
    assert (tmp_path / "my-first-rule.yaml").read_text() == "# mine\n"
    assert (tmp_path / "policy.yaml").read_text() == "# mine too\n"
    assert (tmp_path / INSTALLED_NAMES["rule"]).read_bytes() == (
        CATALOG_DIR / INSTALLED_NAMES["rule"]
    ).read_bytes()
    merged = json.loads(settings.read_text())
    assert merged["editor.tabSize"] == 2
    assert merged["yaml.schemas"]["other.json"] == ["x"]
    assert f"./{INSTALLED_NAMES['rule']}" in merged["yaml.schemas"]
    assert "kept" in capsys.readouterr().err


def test_settings_an_editor_wrote_with_comments_are_left_alone(tmp_path: Path) -> None:
    settings = tmp_path / ".vscode" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text('{\n  // mine\n  "editor.tabSize": 2\n}\n')
    main(["rules", "init", str(tmp_path)])
    assert "// mine" in settings.read_text()


def test_a_directory_with_rules_gets_no_starter(tmp_path: Path) -> None:
    shutil.copy(CATALOG_DIR / "service-bell.yaml", tmp_path)
    main(["rules", "init", str(tmp_path)])
    assert not (tmp_path / "my-first-rule.yaml").exists()
    assert not (tmp_path / "scenarios").exists()
    assert (tmp_path / INSTALLED_NAMES["rule"]).exists()
    assert check_directory(tmp_path) == []
