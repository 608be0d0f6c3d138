"""``floorwalker rules init`` and ``floorwalker rules test``: rule authoring from the shell.

Kept out of :mod:`floorwalker.cli` so that the entry point only registers them; the
work is in :mod:`floorwalker.rules.starter` and :mod:`floorwalker.engine.runners.scenario`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEMO_REGISTRY = Path(__file__).parent / "simulators" / "data" / "demo-store.yaml"


def add_rules(sub: Any) -> None:
    rules = sub.add_parser(
        "rules", help="write rules: a starter directory, a rule tried on a story"
    )
    rsub = rules.add_subparsers(metavar="ACTION")
    init = rsub.add_parser(
        "init",
        help="a rules directory with the JSON Schemas beside it, a starter rule and a scenario",
    )
    init.add_argument("directory", type=Path)
    init.add_argument(
        "--registry",
        action="append",
        type=Path,
        default=[],
        help="offer these stores' zone tags and roles as completions (repeatable)",
    )
    init.set_defaults(func=_cmd_init)
    test = rsub.add_parser(
        "test",
        help="run a rule (or a rules directory) on a scenario told in store time",
        description="Run RULE on the story of a scenario file on a virtual clock, print the"
        " actions in store time and compare them with the scenario's `expect` (exit 1 with a"
        " diff when they differ). See docs/rules.md.",
    )
    test.add_argument("rule", type=Path, help="a rule file, or a rules directory")
    test.add_argument("--scenario", type=Path, required=True, help="the story (YAML)")
    test.add_argument(
        "--registry",
        action="append",
        type=Path,
        default=[],
        help="store registry (default: the bundled demo store); repeat for several",
    )
    test.set_defaults(func=_cmd_test)


def _registries(paths: list[Path]) -> dict[str, Any]:
    from floorwalker.devices.registry import load_registries

    return load_registries(paths or [DEMO_REGISTRY])


def _cmd_init(args: argparse.Namespace) -> int:
    from floorwalker.rules.starter import init_directory

    regs = _registries(args.registry) if args.registry else {}
    tags = sorted({t for r in regs.values() for t in r.tags})
    roles = sorted({m.role for r in regs.values() for m in r.staff.values()})
    by_tag: dict[str, list[str]] | None = None
    if regs:
        first = next(iter(regs.values()))
        by_tag = {t: sorted(z) for t, z in first.zones_by_tag.items()}
    report = init_directory(args.directory, zones_by_tag=by_tag, extra_tags=tags, extra_roles=roles)
    for path in report.written:
        print(f"wrote {path}", file=sys.stderr)
    for path in report.kept:
        print(f"kept  {path} (already there)", file=sys.stderr)
    print(
        f"next: floorwalker check {args.directory}; see docs/rules.md for every key",
        file=sys.stderr,
    )
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    from floorwalker.engine.runners.scenario import run_scenario
    from floorwalker.errors import ConfigError

    if not args.rule.exists():
        raise ConfigError("no such rule file or directory", file=str(args.rule))
    outcome = run_scenario(args.rule, args.scenario, _registries(args.registry))
    sys.stdout.write(outcome.report())
    diff = outcome.diff()
    if outcome.story.expect is None:
        return 0
    if diff is None:
        print(f"{args.scenario}: as expected ({len(outcome.happened)} action(s))", file=sys.stderr)
        return 0
    sys.stderr.write(diff)
    print(f"{args.scenario}: the actions differ from `expect`", file=sys.stderr)
    return 1
