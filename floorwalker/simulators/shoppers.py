"""Synthetic shopper profiles: a plausible loyalty base for demos and benchmarks.

Deterministic for a seed. The mix follows a typical grocery loyalty programme:
about 70 % member, 20 % silver, 8 % gold and 2 % VIP tier; RFM segments loyal,
growing, regular and dormant; about 60 % marketing consent; lifetime value
log-normal by tier. A few profiles are made on purpose to exercise the catalog
rules on the demo date: birthdays within a few days of it, dormant high-value
shoppers last seen more than 180 days before, VIPs with a dedicated advisor, and
newly registered members with no ``first_visit`` yet.

Run ``python -m floorwalker.simulators.shoppers --count 200 --seed 7 --out FILE``
to (re)write a profiles file (JSON Lines, the format of
:func:`floorwalker.engine.core.profiles.iter_profiles`).
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from floorwalker.engine.core.profiles import Profile

DAY = 86400.0
DEMO_DATE = date(2026, 11, 23)
DEMO_TIMEZONE = "Asia/Shanghai"

TIER_MIX: tuple[tuple[str, float], ...] = (
    ("member", 0.70),
    ("silver", 0.20),
    ("gold", 0.08),
    ("vip", 0.02),
)
SEGMENT_MIX: tuple[tuple[str, float], ...] = (
    ("regular", 0.40),
    ("loyal", 0.25),
    ("growing", 0.20),
    ("dormant", 0.15),
)
MEDIAN_LTV: dict[str, float] = {"member": 350.0, "silver": 1500.0, "gold": 5200.0, "vip": 22000.0}
CONSENT_SHARE = 0.60
BIRTHDAY_WEEK_SHARE = 0.05
"""Share of profiles whose birthday is within 3 days of the demo date."""
DORMANT_VIP_SHARE = 0.03
"""Share of profiles made dormant high-value (LTV >= 5000, last visit > 180 days ago)."""
NO_FIRST_VISIT_SHARE = 0.05
"""Newly registered members the engine should treat as first-time visitors."""


def shopper_token(namespace: str, index: int) -> str:
    """A pseudonymous app token (never a MAC or a phone number), stable for its inputs."""
    digest = hashlib.blake2b(f"{namespace}\x1f{index}".encode(), digest_size=6).hexdigest()
    return f"app-{digest}"


def _pick(rng: np.random.Generator, mix: Sequence[tuple[str, float]], n: int) -> list[str]:
    names = [name for name, _ in mix]
    weights = np.array([w for _, w in mix], dtype=np.float64)
    chosen = rng.choice(len(names), size=n, p=weights / weights.sum())
    return [names[int(i)] for i in chosen]


def generate_profiles(
    count: int,
    *,
    seed: int = 7,
    today: date = DEMO_DATE,
    timezone: str = DEMO_TIMEZONE,
    advisors: Sequence[str] = ("band-05", "band-06"),
    namespace: str = "profile",
) -> list[Profile]:
    """``count`` profiles, deterministic for (seed, today, advisors, namespace)."""
    rng = np.random.default_rng(seed)
    tz = ZoneInfo(timezone)
    now = datetime(today.year, today.month, today.day, tzinfo=tz).timestamp()
    tiers = _pick(rng, TIER_MIX, count)
    segments = _pick(rng, SEGMENT_MIX, count)
    consent = rng.random(count) < CONSENT_SHARE
    special = rng.random(count)
    ltv_noise = rng.lognormal(mean=0.0, sigma=0.6, size=count)
    tenure_days = rng.uniform(30, 2000, size=count)
    recency_days = rng.exponential(14.0, size=count)
    birthday_offsets = rng.integers(-3, 4, size=count)
    birthday_days = rng.integers(0, 365, size=count)
    advisor_pick = rng.integers(0, max(1, len(advisors)), size=count)
    profiles: list[Profile] = []
    for i in range(count):
        tier, segment = tiers[i], segments[i]
        ltv = round(MEDIAN_LTV[tier] * float(ltv_noise[i]), 2)
        first: float | None = now - float(tenure_days[i]) * DAY
        days_ago = float(recency_days[i]) + 1.0
        if segment == "dormant":
            days_ago = 90.0 + float(recency_days[i]) * 8.0
        roll = float(special[i])
        if roll < DORMANT_VIP_SHARE:
            segment, ltv = "dormant", max(ltv, 5000.0 + 1000.0 * float(ltv_noise[i]))
            days_ago = 181.0 + float(recency_days[i]) * 10.0
        last: float | None = now - days_ago * DAY
        if DORMANT_VIP_SHARE <= roll < DORMANT_VIP_SHARE + NO_FIRST_VISIT_SHARE:
            first = last = None
        if first is not None and last is not None:
            first = min(first, last)
        if 0.5 <= roll < 0.5 + BIRTHDAY_WEEK_SHARE:
            born = today + timedelta(days=int(birthday_offsets[i]))
        else:
            born = date(2001, 1, 1) + timedelta(days=int(birthday_days[i]))
        advisor = None
        if advisors and (tier == "vip" or (tier == "gold" and roll > 0.8)):
            advisor = advisors[int(advisor_pick[i]) % len(advisors)]
        profiles.append(
            Profile(
                shopper=shopper_token(namespace, i),
                tier=tier,
                segment=segment,
                marketing=bool(consent[i]),
                birthday=(born.month, born.day),
                first_visit=None if first is None else round(first, 3),
                last_visit=None if last is None else round(last, 3),
                lifetime_value=ltv,
                advisor=advisor,
            )
        )
    return profiles


def write_profiles(path: str | Path, profiles: Sequence[Profile]) -> None:
    """Write profiles as JSON Lines (one object per shopper)."""
    with Path(path).open("wb") as out:
        for profile in profiles:
            out.write(orjson.dumps(profile.to_json()) + b"\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m floorwalker.simulators.shoppers", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--today", type=date.fromisoformat, default=DEMO_DATE)
    parser.add_argument("--timezone", default=DEMO_TIMEZONE)
    parser.add_argument("--advisors", default="band-05,band-06", help="comma-separated band ids")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    advisors = tuple(a for a in str(args.advisors).split(",") if a)
    profiles = generate_profiles(
        args.count, seed=args.seed, today=args.today, timezone=args.timezone, advisors=advisors
    )
    write_profiles(args.out, profiles)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
