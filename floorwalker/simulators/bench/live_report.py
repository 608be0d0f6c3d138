"""``bench live``'s verdicts and tables, from its JSON (so a saved run can be re-read).

Every target of issue #12 is a ratio to, or a difference from, the echo floor
measured in the same run (or, for Node-RED, Floorwalker against it in the
same run); :func:`summary` states each one as met or not with its numbers,
and :func:`format_report` prints the tables and the verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

TARGET_RATE_RATIO: Final = 0.8
TARGET_P50_EXTRA_MS: Final = 0.3
TARGET_P99_EXTRA_MS: Final = 1.0
LATENCY_AT: Final = (1000, 5000, 10000)
TIMER_AT: Final = 5000
TARGET_TIMER_P99_MS: Final = 5.0
GENERATOR_HEADROOM: Final = 2.0

Step = Mapping[str, Any]


def _single(steps: Sequence[Step]) -> list[Step]:
    return [s for s in steps if s["series"] == "single"]


def _at(steps: Sequence[Step], rate: int) -> Step | None:
    return next((s for s in _single(steps) if s["offered_rate"] == rate), None)


def max_rate(steps: Sequence[Step], series: str = "single") -> float | None:
    """The highest processing rate a target reached in a series (the slope at saturation)."""
    rates = [s["achieved_rate"] for s in steps if s["series"] == series and s["achieved_rate"]]
    return max(rates) if rates else None


def highest_kept_up(steps: Sequence[Step], series: str = "single") -> int | None:
    ok = [s["offered_rate"] for s in steps if s["series"] == series and s["kept_up"]]
    return max(ok) if ok else None


def _instrument(r: Mapping[str, Any]) -> dict[str, Any] | None:
    rows = r.get("calibration") or []
    if not rows:
        return None
    by = {
        row["series"]: {
            "offered": row["offered_rate"],
            "reached": row["generator"]["event_rate"],
            "acked": f"{row['generator']['acked']}/{row['generator']['sent']}",
            "generator_cpu_pct": row["cpu_pct"].get("generator"),
            "broker_cpu_pct": row["cpu_pct"].get("broker"),
            "sustained": row["sustained"],
        }
        for row in rows
    }
    return {
        "target": f"generator alone >= {GENERATOR_HEADROOM:g}x the highest rate tested",
        "by_series": by,
        "met": all(row["sustained"] for row in rows),
    }


def _throughput(floor: Sequence[Step], fw: Sequence[Step]) -> dict[str, Any] | None:
    fmax, emax = max_rate(floor), max_rate(fw)
    if not fmax or not emax:
        return None
    ratio = emax / fmax
    return {
        "target": f"floorwalker max single-message rate >= {TARGET_RATE_RATIO}x the floor's",
        "floor_max": round(fmax, 1),
        "floorwalker_max": round(emax, 1),
        "floor_highest_kept_up": highest_kept_up(floor),
        "floorwalker_highest_kept_up": highest_kept_up(fw),
        "ratio": round(ratio, 3),
        "met": ratio >= TARGET_RATE_RATIO,
    }


def _latency_at(floor: Sequence[Step], fw: Sequence[Step], rate: int) -> dict[str, Any] | None:
    f, e = _at(floor, rate), _at(fw, rate)
    if f is None or e is None:
        return None
    fl, el = f["latency_ms"], e["latency_ms"]
    out: dict[str, Any] = {
        "target": f"p50 <= floor p50 + {TARGET_P50_EXTRA_MS} ms and "
        f"p99 <= floor p99 + {TARGET_P99_EXTRA_MS} ms at {rate:,}/s",
        "floor_p50_ms": fl["p50_ms"],
        "floor_p99_ms": fl["p99_ms"],
        "floorwalker_p50_ms": el["p50_ms"],
        "floorwalker_p99_ms": el["p99_ms"],
        "both_kept_up": bool(f["kept_up"] and e["kept_up"]),
    }
    if None in (fl["p50_ms"], fl["p99_ms"], el["p50_ms"], el["p99_ms"]):
        out["met"] = False
        return out
    out["p50_extra_ms"] = round(el["p50_ms"] - fl["p50_ms"], 3)
    out["p99_extra_ms"] = round(el["p99_ms"] - fl["p99_ms"], 3)
    out["met"] = bool(
        out["both_kept_up"]
        and out["p50_extra_ms"] <= TARGET_P50_EXTRA_MS
        and out["p99_extra_ms"] <= TARGET_P99_EXTRA_MS
    )
    return out


def _timers(fw: Sequence[Step]) -> dict[str, Any] | None:
    s = _at(fw, TIMER_AT)
    if s is None:
        return None
    p99 = s["timer_lateness_ms"]["p99_ms"]
    return {
        "target": f"timer-triggered actions late by <= {TARGET_TIMER_P99_MS:g} ms at p99 "
        f"at {TIMER_AT:,}/s",
        "p99_ms": p99,
        "escalation_p50_p99_ms": [
            s["escalation_lateness_ms"]["p50_ms"],
            s["escalation_lateness_ms"]["p99_ms"],
        ],
        "dwell_p50_p99_ms": [s["dwell_lateness_ms"]["p50_ms"], s["dwell_lateness_ms"]["p99_ms"]],
        "samples": s["timer_lateness_ms"]["n"],
        "met": p99 is not None and p99 <= TARGET_TIMER_P99_MS,
    }


def _vs_nodered(fw: Sequence[Step], nr: Sequence[Step]) -> dict[str, Any] | None:
    if not fw or not nr:
        return None
    rows: list[dict[str, Any]] = []
    beaten, missing = True, []
    for n in _single(nr):
        rate = n["offered_rate"]
        e = _at(fw, rate)
        if n["kept_up"]:
            if e is None:
                missing.append(rate)
                beaten = False
                continue
            ep, np_ = e["latency_ms"]["p99_ms"], n["latency_ms"]["p99_ms"]
            win = bool(e["kept_up"] and ep is not None and np_ is not None and ep < np_)
            beaten = beaten and win
            rows.append(
                {"rate": rate, "floorwalker_p99_ms": ep, "nodered_p99_ms": np_, "beats": win}
            )
    nr_top = highest_kept_up(nr)
    saturated = any(not n["kept_up"] for n in _single(nr))
    above = [e for e in _single(fw) if nr_top is None or e["offered_rate"] > nr_top]
    past = [e["offered_rate"] for e in above if e["kept_up"]]
    first_above_ok = bool(above) and bool(above[0]["kept_up"])
    return {
        "target": "floorwalker p99 < Node-RED p99 at every rate Node-RED keeps up with, "
        "and floorwalker keeps up past Node-RED's saturation without loss",
        "by_rate": rows,
        "nodered_highest_kept_up": nr_top,
        "nodered_max_rate": max_rate(nr),
        "floorwalker_kept_up_past_it": past,
        "nodered_saturated": saturated,
        "met": bool(beaten and rows and saturated and first_above_ok and not missing),
    }


def summary(r: Mapping[str, Any]) -> dict[str, Any]:
    """Every target as met or not, with its numbers; and each target's maximum rates."""
    t = r["targets"]
    floor, fw, nr = t.get("floor", []), t.get("floorwalker", []), t.get("nodered", [])
    verdicts: dict[str, Any] = {}
    checks = [
        ("instrument", _instrument(r)),
        ("throughput", _throughput(floor, fw)),
        *[(f"latency_at_{rate}", _latency_at(floor, fw, rate)) for rate in LATENCY_AT],
        ("timer_lateness", _timers(fw)),
        ("vs_nodered", _vs_nodered(fw, nr)),
    ]
    for name, verdict in checks:
        if verdict is not None:
            verdicts[name] = verdict
    maxima = {
        name: {
            series: {
                "max_rate": max_rate(steps, series),
                "highest_kept_up": highest_kept_up(steps, series),
            }
            for series in dict.fromkeys(s["series"] for s in steps)
        }
        for name, steps in t.items()
    }
    out: dict[str, Any] = {"maxima": maxima, "verdicts": verdicts}
    if fw and t.get("floorwalker-thread"):
        out["network_loop"] = compare(t["floorwalker-thread"], fw)
        out["network_loop"]["what"] = "paho's network thread (before) -> the core-thread loop"
    if fw and t.get("floorwalker-memory"):
        out["redis"] = compare(fw, t["floorwalker-memory"])
        out["redis"]["what"] = "with Redis (before) -> guards, dedup and journal in memory"
    return out


def compare(before: Sequence[Step], after: Sequence[Step]) -> dict[str, Any]:
    """A lever measured in one run: ``after`` against ``before``, rate by rate (single)."""
    rows = []
    for b in _single(before):
        a = _at(after, b["offered_rate"])
        if a is None:
            continue
        rows.append(
            {
                "rate": b["offered_rate"],
                "p50_ms": [b["latency_ms"]["p50_ms"], a["latency_ms"]["p50_ms"]],
                "p99_ms": [b["latency_ms"]["p99_ms"], a["latency_ms"]["p99_ms"]],
                "timer_p99_ms": [
                    b["timer_lateness_ms"]["p99_ms"],
                    a["timer_lateness_ms"]["p99_ms"],
                ],
                "kept_up": [b["kept_up"], a["kept_up"]],
            }
        )
    bmax, amax = max_rate(before), max_rate(after)
    return {
        "what": "",
        "max_rate": [bmax, amax],
        "max_rate_ratio": round(amax / bmax, 3) if amax and bmax else None,
        "by_rate": rows,
    }


# --------------------------------------------------------------------------- text


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _timer_cell(s: Step) -> str:
    e, d = s["escalation_lateness_ms"], s["dwell_lateness_ms"]
    if not e["n"] and not d["n"]:
        return "-"
    return f"{_cell(e['p50_ms'])}/{_cell(e['p99_ms'])} · {_cell(d['p50_ms'])}/{_cell(d['p99_ms'])}"


def step_line(target: str, s: Step) -> str:
    lat = s["latency_ms"]
    cpu = s["cpu_pct"]
    return (
        f"  {target:11s} {s['series']:8s} {s['offered_rate']:>6}/s:"
        f" gen {s['generator']['event_rate']:>8.0f}/s,"
        f" processed {s['achieved_rate'] or 0:>8.0f}/s, lost {s['lost']},"
        f" press p50/p99 {lat['p50_ms']}/{lat['p99_ms']} ms,"
        f" timers esc·dwell p50/p99 {_timer_cell(s)} ms,"
        f" cpu {cpu.get(target, 0)} % (gen {cpu.get('generator', 0)} %,"
        f" broker {cpu.get('broker', 0)} %), kept up {_cell(s['kept_up'])}"
    )


def calibration_line(row: Mapping[str, Any]) -> str:
    g = row["generator"]
    return (
        f"  generator alone {row['series']:8s} offered {row['offered_rate']:>6}/s:"
        f" reached {g['event_rate']:.0f}/s ({g['publish_rate']:.0f} msg/s),"
        f" acked {g['acked']}/{g['sent']}, blocked {g['blocked_s']} s,"
        f" gen cpu {row['cpu_pct'].get('generator')} %, broker cpu {row['cpu_pct'].get('broker')} %"
    )


_HEAD: Final = (
    "| target | series | offered/s | msg/s | processed/s | lost | kept up | press→alert p50 / p99 "
    "/ p99.9 ms | escalation p50 / p99 ms | dwell p50 / p99 ms | alerts step 1 / 2 | offers "
    "| target CPU % | broker CPU % | gen CPU % | machine busy % |"
)


def table(r: Mapping[str, Any]) -> list[str]:
    lines = [_HEAD, "|" + "---|" * 16]
    for name, steps in r["targets"].items():
        for s in steps:
            lat, cpu, a = s["latency_ms"], s["cpu_pct"], s["alerts"]
            e, d = s["escalation_lateness_ms"], s["dwell_lateness_ms"]
            lines.append(
                f"| {name} | {s['series']} | {_cell(s['offered_rate'])} "
                f"| {_cell(s['offered_msg_rate'])} | {_cell(s['achieved_rate'])} "
                f"| {_cell(s['lost'])} | {_cell(s['kept_up'])} "
                f"| {_cell(lat['p50_ms'])} / {_cell(lat['p99_ms'])} / {_cell(lat['p999_ms'])} "
                f"| {_cell(e['p50_ms'])} / {_cell(e['p99_ms'])} "
                f"| {_cell(d['p50_ms'])} / {_cell(d['p99_ms'])} "
                f"| {a['step1']}/{a['expected']} · {a['step2']}/{a['escalations_expected']} "
                f"| {a['offers']} | {_cell(cpu.get(name))} | {_cell(cpu.get('broker'))} "
                f"| {_cell(cpu.get('generator'))} | {_cell(cpu.get('machine_busy'))} |"
            )
    return lines


def _detail(v: Mapping[str, Any]) -> str:
    skip = ("met", "target", "by_rate", "by_series")
    parts = [f"{k}={_cell(x)}" for k, x in v.items() if k not in skip]
    for row in v.get("by_rate", []):
        parts.append(
            f"@{row['rate']}: {_cell(row['floorwalker_p99_ms'])} vs "
            f"{_cell(row['nodered_p99_ms'])} ms"
        )
    for series, row in v.get("by_series", {}).items():
        parts.append(
            f"{series}: {_cell(row['reached'])}/{_cell(row['offered'])}/s, acked {row['acked']}"
        )
    return ", ".join(parts)


def _pair(values: Sequence[Any]) -> str:
    return " -> ".join(_cell(v) for v in values)


def format_report(r: Mapping[str, Any]) -> str:
    lines = ["", "floorwalker bench live", ""]
    lines += [calibration_line(row) for row in r.get("calibration", [])]
    lines += ["", *table(r), ""]
    for name, rows in r.get("skipped", {}).items():
        for row in rows:
            lines.append(f"{name} {row['series']} {row['offered_rate']:,}/s skipped: {row['why']}")
    lines.append("")
    for name, v in r["summary"]["verdicts"].items():
        status = "MET" if v["met"] else "NOT MET"
        lines.append(f"{name}: {status} — {v['target']} ({_detail(v)})")
    for key in ("network_loop", "redis"):
        loop = r["summary"].get(key)
        if not loop:
            continue
        lines += ["", f"{key.replace('_', ' ')}: {loop['what']}"]
        lines.append(f"  max rate {_pair(loop['max_rate'])}/s")
        for row in loop["by_rate"]:
            lines.append(
                f"  @{row['rate']:,}/s: p50 {_pair(row['p50_ms'])} ms, p99 {_pair(row['p99_ms'])}"
                f" ms, timers p99 {_pair(row['timer_p99_ms'])} ms, kept up {_pair(row['kept_up'])}"
            )
    return "\n".join(lines) + "\n"
