from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from floorwalker.rules.schema import PolicyFile, RuleFile
from floorwalker.rules.schema_gen import (
    CATALOG_DIR,
    INSTALLED_NAMES,
    MODELS,
    SCHEMAS,
    generate,
    main,
    render,
)
from floorwalker.rules.starter import modeline
from floorwalker.rules.vocabulary import BUILTIN_ROLES, BUILTIN_ZONE_TAGS, Vocabulary
from floorwalker.yamlpos import load_yaml
from tests.rules.examples import FULL_RULE

ROOT = Path(__file__).parents[2]
SCHEMA_DIR = ROOT / "schemas"
CATALOG = ROOT / "floorwalker" / "rules" / "catalog"
RULE_FILES = sorted(p for p in CATALOG.glob("*.yaml") if p.name != "policy.yaml")


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(name: str, text: str) -> list[str]:
    # Read the YAML as the loader does (and as editors do): dates and times stay text.
    return [e.message for e in _validator(name).iter_errors(load_yaml(text).data)]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_schemas_are_freshly_generated(name: str) -> None:
    committed = (SCHEMA_DIR / name).read_text(encoding="utf-8")
    assert committed == render(SCHEMAS[name]), "run: python -m floorwalker.rules.schema_gen"


@pytest.mark.parametrize("kind", sorted(INSTALLED_NAMES))
def test_the_installed_copies_beside_the_catalog_are_freshly_generated(kind: str) -> None:
    committed = (CATALOG_DIR / INSTALLED_NAMES[kind]).read_text(encoding="utf-8")
    assert committed == render(MODELS[kind]), "run: python -m floorwalker.rules.schema_gen"


def test_every_catalog_file_names_a_schema_beside_it_so_a_copy_keeps_validating() -> None:
    for path in sorted(CATALOG.glob("*.yaml")):
        kind = "policy" if path.stem == "policy" else "rule"
        lines = path.read_text().splitlines()
        assert modeline(kind) in lines[:3], path.name
        target = modeline(kind).split("$schema=", 1)[1]
        assert not target.startswith(".."), "a path out of the directory breaks on a copy"
        assert (path.parent / target).is_file(), path.name


def test_the_schema_offers_the_vocabulary_as_completions_without_refusing_new_words() -> None:
    schema = generate(RuleFile)
    text = json.dumps(schema)
    assert all(f'"{tag}"' in text for tag in BUILTIN_ZONE_TAGS)
    assert all(f'"{role}"' in text for role in BUILTIN_ROLES)
    store = Vocabulary().extended(zone_tags=["wine-cellar"], roles=["sommelier"])
    custom = json.dumps(generate(RuleFile, store))
    assert '"wine-cellar"' in custom and '"sommelier"' in custom
    validator = jsonschema.Draft202012Validator(schema)
    rule = load_yaml(
        "id: r\nwhen: {enter: {zone_tag: wine-cellar}}\n"
        "alert: {to: {role: sommelier}, message: hi}\n"
    ).data
    assert list(validator.iter_errors(rule)) == []  # examples, not an enum


def test_generation_is_deterministic_and_writes_every_file(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "policy.schema.json",
        "rule.schema.json",
        "vocabulary.schema.json",
    ]
    assert (tmp_path / "rule.schema.json").read_text() == render(RuleFile)
    assert render(PolicyFile) == render(PolicyFile)


def test_every_catalog_rule_validates_against_the_rule_schema() -> None:
    assert len(RULE_FILES) == 11
    for path in RULE_FILES:
        assert _errors("rule.schema.json", path.read_text()) == [], path.name


def test_the_catalog_policy_validates_against_the_policy_schema() -> None:
    assert _errors("policy.schema.json", (CATALOG / "policy.yaml").read_text()) == []
    assert _errors("policy.schema.json", "fatigue: off\n") == []


def test_the_full_syntax_example_validates() -> None:
    assert _errors("rule.schema.json", FULL_RULE) == []


BASE = "id: r\nwhen: {bell: {}}\nalert: {to: nearest, message: hi}\n"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (BASE + "notes: x\n", "'notes' was unexpected"),
        (BASE.replace("bell: {}", "bell: {}, visit_start: {}"), "too many properties"),
        (BASE.replace("{bell: {}}", "{}"), "should be non-empty"),
        ("id: r\nwhen: {bell: {}}\n", "is not valid under any of the given schemas"),
        (BASE.replace("id: r", "id: R R"), "does not match"),
        (BASE.replace("to: nearest", "to: next"), "is not valid under any of the given schemas"),
        (BASE + "limits: {cooldown: 10 sec}\n", "is not valid under any of the given schemas"),
        (BASE + "priority: high\n", "is not of type 'integer'"),
    ],
)
def test_invalid_rules_fail_the_schema(text: str, fragment: str) -> None:
    errors = _errors("rule.schema.json", text)
    assert errors, text
    assert any(fragment in e for e in errors), errors


def test_invalid_policy_fails_the_schema() -> None:
    assert _errors("policy.schema.json", "offers_per_shopper: [{count: 3, per: fortnight}]\n")
    assert _errors("policy.schema.json", "fatigue: sometimes\n")


def _descriptions(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["description"]] if isinstance(node.get("description"), str) else []
        return own + [d for value in node.values() for d in _descriptions(value)]
    if isinstance(node, list):
        return [d for value in node for d in _descriptions(value)]
    return []


def test_every_rule_key_has_help_for_editors() -> None:
    schema = json.loads((SCHEMA_DIR / "rule.schema.json").read_text())
    assert schema["title"] == "Floorwalker rule"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for name, definition in [("(root)", schema), *schema["$defs"].items()]:
        for key, prop in definition.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{key} has no description"
    assert len(_descriptions(schema)) > 50
