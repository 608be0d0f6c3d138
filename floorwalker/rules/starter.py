"""``floorwalker rules init DIR``: a rules directory a marketer can start from alone.

It writes the JSON Schemas next to the rules (so editor validation keeps working
wherever the directory is copied: every rule file names its schema with a relative
``# yaml-language-server: $schema=./floorwalker-rules.schema.json`` line), a starter
rule, the cross-rule policy with its defaults, a scenario to try the rule on
(``scenarios/``, which the loader does not read) and a ``.vscode/settings.json``
mapping for files without that first line.

Schemas are always (re)written: they follow the installed Floorwalker. Rule files,
the policy and the scenario are written only where no file of that name exists,
so running it again on a directory in use never overwrites anyone's work.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floorwalker.rules.loader import RULE_SUFFIXES, load_vocabulary
from floorwalker.rules.schema_gen import INSTALLED_NAMES, write_schemas
from floorwalker.rules.vocabulary import Vocabulary

STARTER_RULE_NAME = "my-first-rule.yaml"
STARTER_SCENARIO = Path("scenarios") / "my-first-rule.yaml"
POLICY_NAME = "policy.yaml"
VSCODE_SETTINGS = Path(".vscode") / "settings.json"
STARTER_TAG = "chilled"


def modeline(kind: str = "rule") -> str:
    """The first line that points an editor at the schema beside the file."""
    return f"# yaml-language-server: $schema=./{INSTALLED_NAMES[kind]}"


STARTER_RULE = f"""\
{modeline()}
# A first rule: a shopper who lingers at the chilled shelf gets a yogurt coupon.
# Check it:  floorwalker check .
# Try it:    floorwalker rules test {STARTER_RULE_NAME} --scenario {STARTER_SCENARIO.as_posix()}
# Every key is explained in docs/rules.md ("Writing rules") and on hover in your editor.
id: my-first-rule
description: Yogurt coupon for a shopper lingering at the chilled shelf.
priority: 10
when:
  dwell: {{zone_tag: {STARTER_TAG}, at_least: 10s}}
unless:
  bought: {{category: yogurt, within: 30m}}
offer:
  id: yogurt-20
  message: 20% off any yogurt today - show this at the till.
  expires: 2h
limits:
  per_shopper:
    - {{count: 1, per: day}}
"""

STARTER_POLICY = f"""\
{modeline("policy")}
# Guards across every rule of this directory (these are the defaults).
offers_per_shopper:
  - {{count: 3, per: day}}
fatigue:
  streak: 3        # offers in a row the shopper did not redeem...
  backoff: 7d      # ...then at most one offer a week
"""


def starter_scenario(zone: str) -> str:
    return f"""\
# A story in store time and zone names; `floorwalker rules test RULE --scenario THIS`
# runs the rule on it and compares what happened with `expect`.
date: 2026-03-02
story:
  - "09:00:00 shopper s1 at {zone} for 12 s"
  - "09:05:00 shopper s2 at {zone} for 4 s"
  - "09:10:00 s2 buys yogurt"
  - "09:11:00 shopper s2 at {zone} for 15 s"
expect:
  - "09:00:10 offer my-first-rule to s1"
"""


@dataclass
class InitReport:
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    """Files that existed and were left alone."""


def init_directory(
    directory: Path,
    *,
    zones_by_tag: dict[str, list[str]] | None = None,
    extra_tags: Iterable[str] = (),
    extra_roles: Iterable[str] = (),
) -> InitReport:
    """Write the schemas, a starter rule, the policy, a scenario and editor settings.

    ``zones_by_tag`` (from a registry) picks the zone the starter scenario walks to;
    without one the scenario is written for the bundled demo store.
    """
    directory.mkdir(parents=True, exist_ok=True)
    vocabulary = load_vocabulary(directory, extra_tags=extra_tags, extra_roles=extra_roles)
    report = InitReport(written=_write_schemas(directory, vocabulary))
    has_rules = any(
        p.suffix in RULE_SUFFIXES and p.stem not in ("policy", "vocabulary")
        for p in directory.iterdir()
    )
    if not has_rules:
        _write_new(directory / STARTER_RULE_NAME, STARTER_RULE, report)
        zones = (zones_by_tag or {"chilled": ["dairy-chilled"]}).get(STARTER_TAG, [])
        if zones:
            _write_new(directory / STARTER_SCENARIO, starter_scenario(zones[0]), report)
    _write_new(directory / POLICY_NAME, STARTER_POLICY, report)
    _write_settings(directory / VSCODE_SETTINGS, report)
    return report


def _write_schemas(directory: Path, vocabulary: Vocabulary) -> list[Path]:
    return write_schemas(directory, names=INSTALLED_NAMES, vocabulary=vocabulary)


def _write_new(path: Path, text: str, report: InitReport) -> None:
    if path.exists():
        report.kept.append(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    report.written.append(path)


def editor_settings() -> dict[str, Any]:
    """``yaml.schemas`` for the YAML extension: which schema checks which file."""
    rules = INSTALLED_NAMES["rule"]
    return {
        f"./{rules}": ["*.yaml", "*.yml", "!policy.yaml", "!vocabulary.yaml", "!scenarios/**"],
        f"./{INSTALLED_NAMES['policy']}": ["policy.yaml"],
        f"./{INSTALLED_NAMES['vocabulary']}": ["vocabulary.yaml"],
    }


def _write_settings(path: Path, report: InitReport) -> None:
    """Add the mapping to the editor's settings, keeping whatever else they hold."""
    settings: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            loaded = None  # JSON with comments, or unreadable: not ours to rewrite
        if not isinstance(loaded, dict):
            report.kept.append(path)
            return
        settings = loaded
    schemas = settings.get("yaml.schemas")
    merged = dict(schemas) if isinstance(schemas, dict) else {}
    merged.update(editor_settings())
    settings["yaml.schemas"] = merged
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    report.written.append(path)
