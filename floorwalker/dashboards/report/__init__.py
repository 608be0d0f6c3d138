"""The campaign report: per rule and day, what the rules did, what it cost and what it earned.

Pure computation (:mod:`.compute`, :mod:`.lift`) is kept apart from where the
records come from (:mod:`.sources`: a replay's files, a live runner's Redis) and
from how it is shown (:mod:`.render_html`, :mod:`.render_csv`). Entry points:

* ``floorwalker report ...`` (:mod:`.command`);
* :func:`todays_report_html` for the live floor page's ``/report``: today's
  report of a running edge runner, from its Redis, as one HTML string;
* :func:`build_report` + :func:`render_report_html` / :func:`report_csv` for
  anything else.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

from floorwalker.dashboards.report.compute import (
    ALL_DAYS,
    Report,
    ReportSettings,
    RuleDay,
    as_dict,
    compute_report,
)
from floorwalker.dashboards.report.records import ReportInput
from floorwalker.dashboards.report.render_csv import report_csv
from floorwalker.dashboards.report.render_html import render_report_html
from floorwalker.devices.registry import Registry
from floorwalker.rules.model import RuleSet


def build_report(data: ReportInput, settings: ReportSettings | None = None) -> Report:
    """The report of ``data`` (see :func:`.sources.from_files` / :func:`.sources.from_redis`)."""
    return compute_report(data, settings)


def todays_report(
    redis_url: str,
    ruleset: RuleSet,
    registries: Mapping[str, Registry],
    *,
    prefix: str = "fw:",
    now: float | None = None,
    window_s: float = 86400.0,
) -> Report:
    """Today's report (the first store's day) of the edge runner recording to ``redis_url``
    under ``prefix`` (its ``--redis-prefix``). Reads Redis: call it off the core thread."""
    from floorwalker.dashboards.report.sources import from_redis  # noqa: PLC0415

    now = time.time() if now is None else now
    tz = next(iter(registries.values())).tzinfo if registries else None
    local = datetime.fromtimestamp(now, tz)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    data = from_redis(redis_url, ruleset, registries, prefix=prefix, since=start)
    settings = ReportSettings(window_s=window_s, as_of=now, day=local.date().isoformat())
    return compute_report(data, settings)


def todays_report_html(
    redis_url: str,
    ruleset: RuleSet,
    registries: Mapping[str, Registry],
    *,
    prefix: str = "fw:",
    now: float | None = None,
    window_s: float = 86400.0,
) -> str:
    """:func:`todays_report` rendered as one self-contained HTML page, for ``/report``."""
    report = todays_report(
        redis_url, ruleset, registries, prefix=prefix, now=now, window_s=window_s
    )
    return render_report_html(report, title="Today's campaign report")


__all__ = [
    "ALL_DAYS",
    "Report",
    "ReportInput",
    "ReportSettings",
    "RuleDay",
    "as_dict",
    "build_report",
    "render_report_html",
    "report_csv",
    "todays_report",
    "todays_report_html",
]
