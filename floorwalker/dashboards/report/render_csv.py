"""The report as CSV: one line per rule and day (``all`` = the whole period), for spreadsheets.

Fixed columns (:func:`floorwalker.dashboards.report.compute.row_dict`, in that
order, dicts left out) and then one column per reason seen: ``audience:<reason>``
(candidates not for them) and ``blocked:<reason>`` (candidates a guard, the
schedule, arbitration or staffing stopped). Empty cells are "does not apply"
(no holdout, no budget, no coupons).
"""

from __future__ import annotations

import csv
import io

from floorwalker.dashboards.report.compute import Report, row_dict


def report_csv(report: Report) -> str:
    rows = [row_dict(r) for r in report.rows]
    fixed = [k for k in (rows[0] if rows else {}) if k not in ("audience", "blocked")]
    audience = sorted({k for r in rows for k in r["audience"]})
    blocked = sorted({k for r in rows for k in r["blocked"]})
    header = fixed + [f"audience:{k}" for k in audience] + [f"blocked:{k}" for k in blocked]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        cells = [_cell(r[k]) for k in fixed]
        cells += [str(r["audience"].get(k, 0)) for k in audience]
        cells += [str(r["blocked"].get(k, 0)) for k in blocked]
        writer.writerow(cells)
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
