"""docs/rules.md: every YAML example passes `floorwalker check`, every story runs as it
says, and every trigger, condition, action and guard of the language has an example."""

from __future__ import annotations

import dataclasses
import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from floorwalker.cli import main
from floorwalker.devices.registry import load_registries
from floorwalker.rules import model as m
from floorwalker.rules.loader import load_rules_for
from floorwalker.rules.schema import PolicyFile, RuleFile, VocabularyFile
from floorwalker.yamlpos import load_yaml

ROOT = Path(__file__).parents[2]
GUIDE = ROOT / "docs" / "rules.md"
CATALOG = ROOT / "floorwalker" / "rules" / "catalog"
DEMO_STORE = ROOT / "floorwalker" / "simulators" / "data" / "demo-store.yaml"
_FENCE = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SCENARIO = re.compile(r"^# rules test: (\S+)", re.MULTILINE)


def _keys(surface: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in surface.model_fields.items()]


@dataclasses.dataclass(frozen=True)
class Snippet:
    line: int
    text: str

    @property
    def data(self) -> Any:
        return load_yaml(self.text).data

    @property
    def kind(self) -> str:
        if _SCENARIO.search(self.text):
            return "scenario"
        keys = set(self.data)
        for name, surface in (("policy", PolicyFile), ("vocabulary", VocabularyFile)):
            if keys <= set(_keys(surface)):
                return name
        return "rule"

    def __str__(self) -> str:
        return f"docs/rules.md:{self.line}"


def _snippets() -> list[Snippet]:
    text = GUIDE.read_text(encoding="utf-8")
    return [Snippet(text.count("\n", 0, mt.start(1)) + 1, mt[1]) for mt in _FENCE.finditer(text)]


SNIPPETS = _snippets()
RULES = [s for s in SNIPPETS if s.kind == "rule"]
SCENARIOS = [s for s in SNIPPETS if s.kind == "scenario"]


def _write(snippet: Snippet, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{snippet.data['id']}.yaml" if snippet.kind == "rule" else f"{snippet.kind}.yaml"
    path = directory / name
    path.write_text(snippet.text, encoding="utf-8")
    return path


def test_the_guide_has_examples_of_every_kind() -> None:
    kinds = {s.kind for s in SNIPPETS}
    assert kinds == {"rule", "policy", "vocabulary", "scenario"}
    assert len(RULES) >= 20


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.kind != "scenario"], ids=str)
def test_every_example_passes_check(
    snippet: Snippet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(snippet, tmp_path)
    code = main(["check", str(tmp_path), "--registry", str(DEMO_STORE)])
    assert code == 0, f"{snippet}: {capsys.readouterr().out}"


def test_rule_ids_are_unique_across_the_guide() -> None:
    ids = [s.data["id"] for s in RULES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def _rule_file(rule_id: str, tmp_path: Path) -> Path:
    for snippet in RULES:
        if snippet.data["id"] == rule_id:
            return _write(snippet, tmp_path / "rules")
    path = CATALOG / f"{rule_id}.yaml"
    assert path.is_file(), f"`# rules test: {rule_id}` names no rule of the guide or catalog"
    return path


@pytest.mark.parametrize("snippet", SCENARIOS, ids=str)
def test_every_story_of_the_guide_runs_as_it_says(
    snippet: Snippet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    match = _SCENARIO.search(snippet.text)
    assert match is not None
    rule = _rule_file(match[1], tmp_path)
    story = tmp_path / "story.yaml"
    story.write_text(snippet.text, encoding="utf-8")
    code = main(["rules", "test", str(rule), "--scenario", str(story)])
    captured = capsys.readouterr()
    assert code == 0, f"{snippet}:\n{captured.out}{captured.err}"
    assert "as expected" in captured.err


# --------------------------------------------------------------------------- coverage


@pytest.fixture(scope="module")
def guide_rules(tmp_path_factory: pytest.TempPathFactory) -> m.RuleSet:
    directory = tmp_path_factory.mktemp("guide")
    for snippet in RULES:
        _write(snippet, directory)
    return load_rules_for(directory, load_registries([DEMO_STORE]))


def _members(tp: Any) -> list[Any]:
    if get_origin(tp) in (Union, types.UnionType):
        return [x for arg in get_args(tp) for x in _members(arg)]
    return [tp]


def _triggers(rules: m.RuleSet) -> set[str]:
    out = set()
    for rule in rules.rules:
        when = rule.when
        out.add(when.pattern.kind if isinstance(when, m.Single) else type(when).__name__)
    return out


def test_every_trigger_of_the_model_has_an_example(guide_rules: m.RuleSet) -> None:
    composites = {t.__name__ for t in _members(m.Trigger) if t is not m.Single}
    assert _triggers(guide_rules) >= set(m.SIGNAL_KINDS) | composites


def test_every_condition_of_the_model_has_an_example(guide_rules: m.RuleSet) -> None:
    used = {
        type(named.condition)
        for rule in guide_rules.rules
        for named in (*rule.conditions, *rule.unless)
    }
    assert used >= set(_members(m.Condition)), set(_members(m.Condition)) - used


def test_every_action_and_target_of_the_model_has_an_example(guide_rules: m.RuleSet) -> None:
    actions = [a for rule in guide_rules.rules for a in rule.actions]
    assert {type(a) for a in actions} >= set(_members(m.ActionSpec))
    alerts = [a for a in actions if isinstance(a, m.AlertSpec)]
    targets = {type(t) for a in alerts for t in (*a.to, *(t for e in a.escalate for t in e.to))}
    assert targets >= set(_members(m.Target)), set(_members(m.Target)) - targets
    assert any(not t.anywhere for a in alerts for t in a.to if isinstance(t, m.Nearest)) or any(
        not t.anywhere for a in alerts for e in a.escalate for t in e.to if isinstance(t, m.Nearest)
    )
    for spec, found in ((m.AlertSpec, alerts), (m.OfferSpec, actions)):
        for f in dataclasses.fields(spec):
            if f.default is dataclasses.MISSING:
                continue
            assert any(isinstance(a, spec) and getattr(a, f.name) != f.default for a in found), (
                f"no example sets {spec.__name__}.{f.name}"
            )


def test_every_guard_of_the_model_has_an_example(guide_rules: m.RuleSet) -> None:
    limits = [rule.limits for rule in guide_rules.rules]
    for f in dataclasses.fields(m.Limits):
        default = f.default if f.default is not dataclasses.MISSING else None
        assert any(getattr(lim, f.name) not in (default, ()) for lim in limits), f.name
    periods = {cap.period for lim in limits for cap in lim.per_shopper}
    assert periods == set(get_args(m.Period))
    budgets = [lim.budget for lim in limits if lim.budget is not None]
    assert any(b.coupons for b in budgets) and any(b.amount for b in budgets)


def _surface_keys(surface: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    """Every key of every mapping a file of this kind may hold."""
    if surface in seen:
        return set()
    seen.add(surface)
    keys = set(_keys(surface))
    for info in surface.model_fields.values():
        for child in _models_in(info.annotation):
            keys |= _surface_keys(child, seen)
    return keys


def _models_in(tp: Any) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [x for arg in get_args(tp) for x in _models_in(arg)]


def _written_keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _written_keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _written_keys(v)}
    return set()


@pytest.mark.parametrize(
    ("surface", "kind"),
    [(RuleFile, "rule"), (PolicyFile, "policy"), (VocabularyFile, "vocabulary")],
)
def test_every_key_of_the_language_is_written_in_some_example(
    surface: type[BaseModel], kind: str
) -> None:
    written = {k for s in SNIPPETS if s.kind == kind for k in _written_keys(s.data)}
    missing = _surface_keys(surface, set()) - written
    assert not missing, f"docs/rules.md has no {kind} example using {sorted(missing)}"
