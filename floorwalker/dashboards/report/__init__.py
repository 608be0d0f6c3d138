"""The campaign report: per rule and day, what the rules did, what it cost and what it earned.

Pure computation (:mod:`.compute`, :mod:`.lift`) is kept apart from where the
records come from (:mod:`.sources`: a replay's files, a live runner's Redis) and
from how it is shown (:mod:`.render_html`, :mod:`.render_csv`). Entry points:

* ``floorwalker report ...`` (:mod:`.command`);
* :class:`LiveReport` (or :func:`todays_report_html`) for the live floor page's
  ``/report``: today's report of a running edge runner, from its Redis, as one
  HTML string;
* :func:`build_report` + :func:`render_report_html` / :func:`report_csv` for
  anything else.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class LiveReport:
    """Today's report of a running edge runner, from what it records in its Redis.

    Build it once where the rules and registries are known, call :meth:`html` (or
    :meth:`report`) per request. Each call reads Redis: never on the core thread."""

    redis_url: str
    ruleset: RuleSet
    registries: Mapping[str, Registry]
    prefix: str = "fw:"
    """The runner's ``--redis-prefix``."""
    window_s: float = 86400.0

    def report(self, now: float | None = None) -> Report:
        """Today (in the first store's timezone) up to ``now`` (default: the wall clock)."""
        from floorwalker.dashboards.report.sources import from_redis  # noqa: PLC0415

        now = time.time() if now is None else now
        tz = next(iter(self.registries.values())).tzinfo if self.registries else None
        local = datetime.fromtimestamp(now, tz)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        data = from_redis(
            self.redis_url, self.ruleset, self.registries, prefix=self.prefix, since=start
        )
        day = local.date().isoformat()
        return compute_report(data, ReportSettings(window_s=self.window_s, as_of=now, day=day))

    def html(self, now: float | None = None) -> str:
        """:meth:`report` as one self-contained HTML page, for the floor page's ``/report``."""
        return render_report_html(self.report(now), title="Today's campaign report")


def todays_report_html(
    redis_url: str,
    ruleset: RuleSet,
    registries: Mapping[str, Registry],
    *,
    prefix: str = "fw:",
    now: float | None = None,
) -> str:
    """One call for the live page: ``LiveReport(...).html(now)``."""
    return LiveReport(redis_url, ruleset, registries, prefix).html(now)


__all__ = [
    "ALL_DAYS",
    "LiveReport",
    "Report",
    "ReportInput",
    "ReportSettings",
    "RuleDay",
    "as_dict",
    "build_report",
    "render_report_html",
    "report_csv",
    "todays_report_html",
]
