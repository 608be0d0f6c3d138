"""The report as one self-contained HTML page: tables, and inline SVG where a picture helps.

No script, no external file, no extra dependency: the page opens from disk or is
served as is by the live floor page (``/report``). Plots are SVG drawn here:

* **where the candidates went**, per rule: sent, not for them, holdout, blocked,
  as shares of its candidates;
* **holdout lift**: each rule's lift with its 95 % interval against zero;
* **budgets**: spent, reserved and remaining of each rule's limit.

Tables carry ids (``rules``, ``lift``, ``budgets``, ``days``, ``never``) so
scripts and browser tests find them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape

from floorwalker.dashboards.report.compute import Report, RuleDay
from floorwalker.dashboards.report.lift import Lift

COLOURS = {
    "sent": "#2e7d32",
    "audience": "#b0bec5",
    "holdout": "#7e57c2",
    "blocked": "#ef6c00",
    "spent": "#2e7d32",
    "reserved": "#fbc02d",
    "remaining": "#e0e0e0",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;
max-width:72rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem}
.meta{color:#555;font-size:.9rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.88rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left;white-space:nowrap}th{background:#f5f5f5}
tr.never td{color:#888;font-style:italic}
.sig{font-weight:600;color:#2e7d32}.neg{color:#c62828}
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
details{margin:.5rem 0}dd{margin-bottom:.4rem}
"""


def render_report_html(report: Report, *, title: str = "Campaign report") -> str:
    """The whole report as one HTML document (a ``str``)."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class='meta'>{escape(_period(report))}</p>",
        _rules_section(report),
        _lift_section(report),
        _budget_section(report),
        _days_section(report),
        _never_section(report),
        _notes(report),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


# --------------------------------------------------------------------------- sections


def _period(report: Report) -> str:
    def when(ts: float | None) -> str:
        if ts is None:
            return "-"
        return datetime.fromtimestamp(ts, report.timezone or UTC).strftime("%Y-%m-%d %H:%M %Z")

    days = ", ".join(report.days) if report.days else "no activity"
    window = _duration(report.settings.window_s)
    return (
        f"From {when(report.start)} to {when(report.end)} (store days: {days}). "
        f"Source: {report.source or '-'}. Conversion and attribution window: {window}."
    )


def _rules_section(report: Report) -> str:
    rows = report.totals()
    head = (
        "<tr><th>rule</th><th>kind</th><th>candidates</th><th>not for them</th>"
        "<th>holdout</th><th>blocked</th><th>sent</th><th>coupons</th><th>redeemed</th>"
        "<th>redemption rate</th><th>attributed revenue</th></tr>"
    )
    body = []
    for r in rows:
        if r.candidates == 0:
            body.append(
                f"<tr class='never'><td>{escape(r.rule)}</td><td>{escape('+'.join(r.kinds))}</td>"
                "<td colspan='9'>never triggered</td></tr>"
            )
            continue
        body.append(
            "<tr>"
            f"<td>{escape(r.rule)}</td><td>{escape('+'.join(r.kinds))}</td>"
            f"<td>{r.candidates}</td><td>{_with_reasons(r.audience_filtered, r.audience)}</td>"
            f"<td>{r.holdout}</td><td>{_with_reasons(r.guard_suppressed, r.blocked)}</td>"
            f"<td>{r.sent}</td><td>{r.coupons if 'offer' in r.kinds else '-'}</td>"
            f"<td>{r.redeemed if 'offer' in r.kinds else '-'}</td>"
            f"<td>{_pct(r.redemption_rate)}</td><td>{_money(r.revenue, r)}</td>"
            "</tr>"
        )
    return (
        "<h2>Rules</h2>"
        "<p>Counts are per candidate (one firing of a rule, whatever its actions).</p>"
        + _funnel_svg([r for r in rows if r.candidates])
        + f"<table id='rules'>{head}{''.join(body)}</table>"
    )


def _lift_section(report: Report) -> str:
    rows = [r for r in report.rows if r.lift is not None]
    if not rows:
        return (
            "<h2>Holdout lift</h2><p>No rule has a holdout, so no lift can be measured. "
            "Give a rule <code>limits: {holdout: 20%}</code> to compare.</p>"
        )
    head = (
        "<tr><th>rule</th><th>day</th><th>treated (converted)</th><th>conversion</th>"
        "<th>holdout (converted)</th><th>conversion</th><th>lift</th><th>95% interval</th></tr>"
    )
    body = [_lift_row(r) for r in rows]
    plotted = [r for r in report.totals() if r.lift is not None and r.lift.measurable]
    return (
        "<h2>Holdout lift</h2>"
        "<p>Conversion of shoppers sent the rule's offer against its holdout shoppers; "
        "lift in percentage points with Newcombe's 95% hybrid score interval.</p>"
        + _lift_svg(plotted)
        + f"<table id='lift'>{head}{''.join(body)}</table>"
    )


def _lift_row(r: RuleDay) -> str:
    lift = r.lift
    assert lift is not None
    diff, ci = lift.difference, lift.interval
    css = ""
    if ci is not None and lift.significant:
        css = " class='sig'" if ci.low > 0 else " class='neg'"
    interval = "-" if ci is None else f"{_pp(ci.low)} to {_pp(ci.high)}"
    return (
        f"<tr><td>{escape(r.rule)}</td><td>{escape(r.day)}</td>"
        f"<td>{lift.treated} ({lift.treated_converted})</td><td>{_pct(lift.treated_rate)}</td>"
        f"<td>{lift.holdout} ({lift.holdout_converted})</td><td>{_pct(lift.holdout_rate)}</td>"
        f"<td{css}>{'-' if diff is None else _pp(diff)}</td><td{css}>{interval}</td></tr>"
    )


def _budget_section(report: Report) -> str:
    rows = [r for r in report.rows if r.budget is not None]
    if not rows:
        return ""
    head = (
        "<tr><th>rule</th><th>day</th><th>limit</th><th>issued</th><th>redeemed</th>"
        "<th>used (reserved + spent)</th><th>remaining</th></tr>"
    )
    body = []
    for r in rows:
        b = r.budget
        assert b is not None
        limit = " / ".join(
            x
            for x in (
                f"{b.coupons} coupons" if b.coupons is not None else "",
                f"{b.amount:.2f}" if b.amount is not None else "",
            )
            if x
        )
        remaining = " / ".join(
            x
            for x in (
                f"{b.remaining_coupons} coupons" if b.remaining_coupons is not None else "",
                f"{b.remaining_amount:.2f}" if b.remaining_amount is not None else "",
            )
            if x
        )
        body.append(
            f"<tr><td>{escape(r.rule)}</td><td>{escape(r.day)}</td><td>{limit}</td>"
            f"<td>{b.issued} ({b.issued_amount:.2f})</td>"
            f"<td>{b.redeemed} ({b.redeemed_amount:.2f})</td>"
            f"<td>{b.used} ({b.used_amount:.2f})</td><td>{remaining}</td></tr>"
        )
    return (
        "<h2>Budgets</h2><p>A coupon reserves its cost when issued; a redemption spends it; "
        "a coupon that expires unredeemed gives it back. Used and remaining stand at the "
        "end of each day (the <em>all</em> row: at the end of the report).</p>"
        + _budget_svg([r for r in report.totals() if r.budget is not None])
        + f"<table id='budgets'>{head}{''.join(body)}</table>"
    )


def _days_section(report: Report) -> str:
    rows = report.by_day()
    if not rows:
        return ""
    head = (
        "<tr><th>rule</th><th>day</th><th>candidates</th><th>not for them</th><th>holdout</th>"
        "<th>blocked</th><th>sent</th><th>coupons</th><th>redeemed</th>"
        "<th>redemption rate</th><th>attributed revenue</th></tr>"
    )
    body = [
        f"<tr><td>{escape(r.rule)}</td><td>{escape(r.day)}</td><td>{r.candidates}</td>"
        f"<td>{_with_reasons(r.audience_filtered, r.audience)}</td><td>{r.holdout}</td>"
        f"<td>{_with_reasons(r.guard_suppressed, r.blocked)}</td><td>{r.sent}</td>"
        f"<td>{r.coupons}</td><td>{r.redeemed}</td><td>{_pct(r.redemption_rate)}</td>"
        f"<td>{_money(r.revenue, r)}</td></tr>"
        for r in rows
    ]
    return f"<h2>Per day</h2><table id='days'>{head}{''.join(body)}</table>"


def _never_section(report: Report) -> str:
    if not report.never_triggered:
        return "<h2>Rules that never triggered</h2><p id='never'>None: every rule fired.</p>"
    items = "".join(f"<li>{escape(r)}</li>" for r in report.never_triggered)
    return (
        "<h2>Rules that never triggered</h2>"
        "<p>Loaded and running, but nothing in this period matched their trigger: check the "
        "zone tags, the trigger and the schedule.</p>"
        f"<ul id='never'>{items}</ul>"
    )


def _notes(report: Report) -> str:
    refused = ", ".join(f"{k} {v}" for k, v in report.redemptions_refused.items()) or "none"
    skipped = ", ".join(f"{k} {v}" for k, v in report.skipped.items()) or "none"
    window = _duration(report.settings.window_s)
    return f"""<h2>How to read this</h2><dl>
<dt>Candidate</dt><dd>One firing of a rule. Its outcome is <b>sent</b> if any action went
out; <b>not for them</b> if every action was refused for who the shopper is (the rule's
conditions, no marketing consent, no shopper); <b>holdout</b> if held out; else
<b>blocked</b>, under the first reason (cap, cooldown, budget, fatigue, quiet hours,
outranked, already open, no staff available, ...).</dd>
<dt>Redeemed</dt><dd>The first POS coupon line of a code the rule issued, before it expired,
counted on the day of issue. Redemption rate = redeemed / coupons issued.</dd>
<dt>Attributed revenue</dt><dd>The checkout of the receipt the coupon was redeemed on, else the
shopper's first checkout within {window} after redeeming; each checkout once per rule.</dd>
<dt>Lift</dt><dd>Treated: shoppers sent the rule's offer; holdout: shoppers the rule held out
(the same shoppers every time). A shopper converts with a checkout of theirs within {window}
after their first decision. Lift = treated conversion - holdout conversion, in percentage
points; the interval is Newcombe's hybrid score interval (95%). Green: the interval is above
zero.</dd>
<dt>Not counted</dt><dd>Coupon lines that were no redemption: {escape(refused)}. Input lines
skipped: {escape(skipped)}.</dd></dl>"""


# --------------------------------------------------------------------------- plots


def _funnel_svg(rows: Sequence[RuleDay]) -> str:
    """One stacked bar per rule: its candidates' outcomes as shares."""
    if not rows:
        return ""
    label_w, bar_w, row_h = 190, 480, 22
    height = row_h * len(rows) + 10
    out = [_svg_open(label_w + bar_w + 70, height, "where the candidates went")]
    for i, r in enumerate(rows):
        y = 5 + i * row_h
        out.append(_text(label_w - 6, y + 14, r.rule, anchor="end"))
        x = float(label_w)
        parts = [
            ("sent", r.sent),
            ("audience", r.audience_filtered),
            ("holdout", r.holdout),
            ("blocked", r.guard_suppressed),
        ]
        for key, n in parts:
            w = bar_w * n / r.candidates
            if w > 0:
                title = f"{key}: {n} of {r.candidates}"
                out.append(_rect(x, y + 2, w, row_h - 6, COLOURS[key], title))
            x += w
        out.append(_text(label_w + bar_w + 6, y + 14, str(r.candidates)))
    out.append("</svg>")
    legend = _legend(
        [("sent", "sent"), ("audience", "not for them"), ("holdout", "holdout"),
         ("blocked", "blocked")]
    )  # fmt: skip
    return "".join(out) + legend


def _lift_svg(rows: Sequence[RuleDay]) -> str:
    """Each rule's lift (a dot) and its 95 % interval (a line), against zero."""
    if not rows:
        return ""
    lifts: list[tuple[str, Lift]] = [(r.rule, r.lift) for r in rows if r.lift is not None]
    bounds = [abs(v) for _, lift in lifts for v in _ends(lift)]
    span = max(0.05, *bounds) * 1.1
    label_w, plot_w, row_h = 190, 420, 26
    height = row_h * len(lifts) + 30
    out = [_svg_open(label_w + plot_w + 90, height, "holdout lift with 95% intervals")]

    def x_of(v: float) -> float:
        return label_w + plot_w * (v + span) / (2 * span)

    zero = x_of(0.0)
    out.append(f"<line x1='{zero:.1f}' y1='0' x2='{zero:.1f}' y2='{height - 20}' stroke='#999'/>")
    out.append(_text(zero, height - 6, "0", anchor="middle"))
    out.append(_text(x_of(-span), height - 6, _pp(-span), anchor="start"))
    out.append(_text(x_of(span), height - 6, _pp(span), anchor="end"))
    for i, (rule, lift) in enumerate(lifts):
        y = 10 + i * row_h + row_h / 2
        ci, diff = lift.interval, lift.difference
        if ci is None or diff is None:
            continue
        colour = COLOURS["sent"] if ci.low > 0 else ("#c62828" if ci.high < 0 else "#455a64")
        out.append(_text(label_w - 6, y + 4, rule, anchor="end"))
        out.append(
            f"<line x1='{x_of(ci.low):.1f}' y1='{y:.1f}' x2='{x_of(ci.high):.1f}' y2='{y:.1f}' "
            f"stroke='{colour}' stroke-width='2'/>"
        )
        out.append(
            f"<circle cx='{x_of(diff):.1f}' cy='{y:.1f}' r='4' fill='{colour}'>"
            f"<title>{escape(rule)}: {_pp(diff)} ({_pp(ci.low)} to {_pp(ci.high)})</title>"
            "</circle>"
        )
        out.append(_text(label_w + plot_w + 6, y + 4, _pp(diff)))
    out.append("</svg>")
    return "".join(out)


def _ends(lift: Lift) -> Iterable[float]:
    ci = lift.interval
    return () if ci is None else (ci.low, ci.high)


def _budget_svg(rows: Sequence[RuleDay]) -> str:
    """Spent, reserved and remaining of each budget (money if it has an amount, else coupons)."""
    bars = []
    for r in rows:
        b = r.budget
        if b is None:
            continue
        if b.amount is not None:
            spent = _spent_share(r)
            limit, used = b.amount, b.used_amount
        elif b.coupons is not None:
            spent = _spent_share(r)
            limit, used = float(b.coupons), float(b.used)
        else:
            continue
        bars.append((r.rule, limit, used, spent))
    if not bars:
        return ""
    label_w, bar_w, row_h = 190, 480, 22
    height = row_h * len(bars) + 10
    out = [_svg_open(label_w + bar_w + 90, height, "budgets: spent, reserved, remaining")]
    for i, (rule, limit, used, spent_share) in enumerate(bars):
        y = 5 + i * row_h
        out.append(_text(label_w - 6, y + 14, rule, anchor="end"))
        used_w = bar_w * min(used, limit) / limit if limit else 0.0
        spent_w = used_w * spent_share
        out.append(_rect(label_w, y + 2, spent_w, row_h - 6, COLOURS["spent"], "spent"))
        reserved_w = used_w - spent_w
        out.append(
            _rect(label_w + spent_w, y + 2, reserved_w, row_h - 6, COLOURS["reserved"], "reserved")
        )
        rest = bar_w - used_w
        out.append(
            _rect(label_w + used_w, y + 2, rest, row_h - 6, COLOURS["remaining"], "remaining")
        )
        out.append(_text(label_w + bar_w + 6, y + 14, f"{used:g} / {limit:g}"))
    out.append("</svg>")
    legend = _legend([("spent", "spent"), ("reserved", "reserved"), ("remaining", "remaining")])
    return "".join(out) + legend


def _spent_share(r: RuleDay) -> float:
    b = r.budget
    assert b is not None
    if b.amount is not None:
        return b.redeemed_amount / b.used_amount if b.used_amount else 0.0
    return b.redeemed / b.used if b.used else 0.0


def _svg_open(width: int, height: int, label: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{escape(label)}' "
        "style='font-size:12px;display:block'>"
    )


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str) -> str:
    return (
        f"<rect x='{x:.1f}' y='{y:.1f}' width='{max(w, 0.0):.1f}' height='{h:.1f}' "
        f"fill='{fill}'><title>{escape(title)}</title></rect>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start") -> str:
    return f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}'>{escape(text)}</text>"


def _legend(items: Sequence[tuple[str, str]]) -> str:
    spans = "".join(
        f"<span><i style='background:{COLOURS[key]}'></i>{escape(label)}</span>"
        for key, label in items
    )
    return f"<p class='legend'>{spans}</p>"


# --------------------------------------------------------------------------- formatting


def _with_reasons(total: int, reasons: Mapping[str, int]) -> str:
    if not total:
        return str(total)
    detail = ", ".join(f"{escape(k)} {v}" for k, v in reasons.items())
    return f"{total}<br><small>{detail}</small>"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _pp(value: float) -> str:
    return f"{100 * value:+.1f} pp"


def _money(value: float, r: RuleDay) -> str:
    return f"{value:,.2f}" if "offer" in r.kinds else "-"


def _duration(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{seconds / 86400:g} d"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min"
