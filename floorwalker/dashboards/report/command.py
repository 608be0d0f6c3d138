"""``floorwalker report``: the campaign report of a replay or of a live runner, HTML and CSV.

From a replay::

    floorwalker replay ... --decisions dec.jsonl CAPTURE > actions.jsonl
    floorwalker report --registry STORE.yaml --rules RULES \\
        --decisions dec.jsonl --actions actions.jsonl --capture CAPTURE

From a live edge runner (what it records in Redis, :mod:`~floorwalker.engine.stores.redis_record`)::

    floorwalker report --registry STORE.yaml --rules RULES --redis redis://... [--day 2026-11-23]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from floorwalker.errors import ConfigError


def add_report(sub: Any, duration: Any) -> None:
    """Register ``floorwalker report`` on the top-level subparsers."""
    p = sub.add_parser(
        "report",
        help="the campaign report (HTML + CSV) of a replay or of a live runner",
        description="Per rule and store day: candidates, not for them, holdout, blocked by"
        " reason, sent, redeemed, redemption rate, attributed revenue, holdout lift with a 95%%"
        " interval, budget issued/redeemed/remaining; rules that never triggered.",
    )
    p.add_argument("--registry", action="append", type=Path, required=True, help="repeatable")
    p.add_argument("--rules", type=Path, required=True, help="the rules the records came from")
    src = p.add_argument_group("from a replay")
    src.add_argument("--decisions", type=Path, help="replay --decisions FILE")
    src.add_argument("--actions", type=Path, help="replay's stdout (JSON Lines)")
    src.add_argument("--capture", type=Path, help="the capture replayed")
    live = p.add_argument_group("from a live runner")
    live.add_argument("--redis", help="the runner's Redis, redis://host:port/db")
    live.add_argument("--redis-prefix", default="fw:", help="the runner's --redis-prefix")
    live.add_argument("--since", help="records from this time on (ISO with offset, or epoch s)")
    p.add_argument("--day", help="only this store day, YYYY-MM-DD")
    p.add_argument(
        "--window",
        type=duration,
        default=86400.0,
        help="conversion and attribution window (default 24h)",
    )
    p.add_argument("--prefix", default="fw", help="topic prefix of the capture and actions")
    p.add_argument("--html", type=Path, default=Path("report.html"), help="default report.html")
    p.add_argument("--csv", type=Path, default=Path("report.csv"), help="default report.csv")
    p.add_argument("--title", default="Campaign report")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from floorwalker.dashboards.report import render_report_html, report_csv  # noqa: PLC0415
    from floorwalker.dashboards.report.compute import ReportSettings, compute_report  # noqa: PLC0415
    from floorwalker.devices.registry import load_registries  # noqa: PLC0415
    from floorwalker.rules.loader import load_rules_for  # noqa: PLC0415

    registries = load_registries(args.registry)
    ruleset = load_rules_for(args.rules, registries)
    data = _input(args, ruleset, registries)
    try:
        settings = ReportSettings(window_s=args.window, day=_day(args.day))
    except ValueError as exc:
        raise ConfigError(f"report: {exc}") from exc
    report = compute_report(data, settings)
    args.html.write_text(render_report_html(report, title=args.title), encoding="utf-8")
    args.csv.write_text(report_csv(report), encoding="utf-8")
    lifts = sum(1 for r in report.totals() if r.lift is not None and r.lift.measurable)
    print(
        f"report: {len(report.totals())} rule(s), {len(report.days)} day(s),"
        f" {lifts} with a holdout lift, {len(report.never_triggered)} never triggered"
        f" -> {args.html}, {args.csv}",
        file=sys.stderr,
    )
    for key, n in sorted(report.skipped.items()):
        print(f"report: skipped {n} input line(s): {key}", file=sys.stderr)
    return 0


def _input(args: argparse.Namespace, ruleset: Any, registries: Any) -> Any:
    from floorwalker.dashboards.report.sources import from_files, from_redis  # noqa: PLC0415

    files = (args.decisions, args.actions, args.capture)
    if args.redis is not None:
        if any(f is not None for f in files):
            raise ConfigError("report: give either --redis or the replay's files, not both")
        since = _since(args.since)
        return from_redis(args.redis, ruleset, registries, prefix=args.redis_prefix, since=since)
    if any(f is None for f in files):
        raise ConfigError(
            "report: give --decisions, --actions and --capture (a replay's files), or --redis URL"
            " (a live runner's record)"
        )
    return from_files(
        ruleset,
        registries,
        decisions=args.decisions,
        actions=args.actions,
        capture=args.capture,
        prefix=args.prefix,
    )


def _since(text: str | None) -> float:
    if text is None:
        return 0.0
    from floorwalker.engine.runners.replay import parse_until  # noqa: PLC0415

    try:
        return parse_until(text)
    except ValueError as exc:
        raise ConfigError(f"report --since: {exc}") from exc


def _day(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise ConfigError(f"report --day: {text!r} is not a date like 2026-11-23") from None
