"""Recency-frequency-monetary scoring of shoppers: segments and tiers (pure numpy).

Input is one row per checkout — shopper index, ``ts`` (epoch s), ``total`` — and
the moment ``now`` to score at. Checkouts after ``now`` (and non-finite rows) are
ignored, so a history can be re-scored as of any past day. Per shopper with at
least one checkout up to ``now``:

* **recency** — days since the last checkout (any age);
* **frequency** — checkouts in the window (``window_days``, default 365) ending at ``now``;
* **monetary** — total spent in the window (refunds, negative totals, count);
* **lifetime** — total spent over the whole history given, floored at 0.

Quintile scores 1-5 (5 = best: most recent, most frequent, biggest spender) are
*mid-rank* quintiles: a shopper's percentile is
``(shoppers strictly worse + half the shoppers tied with them) / n`` and the
score is ``ceil(5 * percentile)``. Ties always share a score, any ``n`` works (a
lone shopper, or everyone tied, scores 3) and five distinct shoppers score
1, 2, 3, 4, 5. The arithmetic is done in integers, so boundaries are exact.

Segments, first rule that matches (``R``, ``F``, ``M`` are the scores):

1. ``dormant`` — no checkout for ``dormant_days`` (180) days or more, whatever the rest;
2. ``loyal``   — ``R >= 4`` and ``F >= 4``;
3. ``growing`` — ``R >= 4``, ``F <= 3`` and either *new* (first checkout within the
   last ``recent_days``, 90) or *rising* (checkouts per day over the last
   ``recent_days`` above the rate over the rest of the window);
4. ``regular`` — everyone else.

Tiers, highest that matches (``spend`` = monetary, ``checkouts`` = frequency):

* ``vip``    — ``spend >= vip_min_spend`` (5000), ``checkouts >= vip_min_checkouts`` (2),
  and among the top ``vip_share`` (2%) by spend: fewer than
  ``max(1, round(vip_share * n))`` shoppers spend strictly more (ties share the place);
* ``gold``   — ``M >= 4``, ``F >= 3`` and ``spend >= gold_min_spend`` (1000);
* ``silver`` — (``M >= 3`` or ``F >= 4``) and ``spend >= silver_min_spend`` (200);
* ``member`` — everyone else.

The minimum spends keep tiers meaningful in a small or low-spending population,
where relative scores alone would crown somebody anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DAY_S = 86400.0

SEGMENT_ORDER = ("loyal", "growing", "regular", "dormant")
TIER_ORDER = ("member", "silver", "gold", "vip")


@dataclass(frozen=True, slots=True)
class RfmSettings:
    window_days: float = 365.0
    dormant_days: float = 180.0
    recent_days: float = 90.0
    """"New" and "rising" look at this many most recent days."""
    loyal_min_r: int = 4
    loyal_min_f: int = 4
    growing_min_r: int = 4
    growing_max_f: int = 3
    vip_share: float = 0.02
    vip_min_spend: float = 5000.0
    vip_min_checkouts: int = 2
    gold_min_m: int = 4
    gold_min_f: int = 3
    gold_min_spend: float = 1000.0
    silver_min_m: int = 3
    silver_min_f: int = 4
    silver_min_spend: float = 200.0

    def __post_init__(self) -> None:
        if not 0 < self.recent_days < self.window_days:
            raise ValueError("recent_days must be positive and shorter than window_days")
        if not 0 <= self.vip_share <= 1:
            raise ValueError("vip_share must be between 0 and 1")


@dataclass(frozen=True)
class RfmResult:
    """Scores of the shoppers with at least one checkout up to ``now``, aligned arrays.

    ``index[i]`` is the input shopper index that row ``i`` describes.
    """

    now: float
    index: npt.NDArray[np.int64]
    recency_days: npt.NDArray[np.float64]
    frequency: npt.NDArray[np.int64]
    monetary: npt.NDArray[np.float64]
    lifetime_value: npt.NDArray[np.float64]
    first_days: npt.NDArray[np.float64]
    """Days since the first checkout."""
    r: npt.NDArray[np.int8]
    f: npt.NDArray[np.int8]
    m: npt.NDArray[np.int8]
    segment: list[str]
    tier: list[str]

    def __len__(self) -> int:
        return len(self.index)

    def counts(self) -> dict[str, dict[str, int]]:
        """How many shoppers landed in each segment and tier (every name present)."""
        seg = dict.fromkeys(SEGMENT_ORDER, 0)
        tier = dict.fromkeys(TIER_ORDER, 0)
        for s, t in zip(self.segment, self.tier, strict=True):
            seg[s] += 1
            tier[t] += 1
        return {"segments": seg, "tiers": tier}


def quintile_scores(values: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """Mid-rank quintile score 1-5 of each value (higher value, higher score)."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    ordered = np.sort(x)
    below = np.searchsorted(ordered, x, side="left")
    tied = np.searchsorted(ordered, x, side="right") - below
    # ceil(5 * (below + tied / 2) / n), in integers
    numerator = 5 * (2 * below + tied)
    scores = -(-numerator // (2 * n))
    out: npt.NDArray[np.int8] = np.clip(scores, 1, 5).astype(np.int8)
    return out


def score(
    shopper: npt.ArrayLike,
    ts: npt.ArrayLike,
    total: npt.ArrayLike,
    now: float,
    settings: RfmSettings | None = None,
    *,
    n_shoppers: int | None = None,
) -> RfmResult:
    """Score every shopper with a checkout up to ``now``; see the module doc for the rules."""
    cfg = settings or RfmSettings()
    who = np.asarray(shopper, dtype=np.int64)
    at = np.asarray(ts, dtype=np.float64)
    paid = np.asarray(total, dtype=np.float64)
    if not (who.ndim == at.ndim == paid.ndim == 1 and len(who) == len(at) == len(paid)):
        raise ValueError("shopper, ts and total must be 1-D arrays of one length")
    if len(who) and who.min() < 0:
        raise ValueError("shopper indices must be >= 0")
    n = int(n_shoppers if n_shoppers is not None else (who.max() + 1 if len(who) else 0))

    use = np.isfinite(at) & np.isfinite(paid) & (at <= now)
    who, at, paid = who[use], at[use], paid[use]
    seen = np.bincount(who, minlength=n)
    index = np.flatnonzero(seen > 0).astype(np.int64)

    last = np.full(n, -np.inf)
    np.maximum.at(last, who, at)
    first = np.full(n, np.inf)
    np.minimum.at(first, who, at)
    in_window = at >= now - cfg.window_days * DAY_S
    recent = at >= now - cfg.recent_days * DAY_S
    frequency = np.bincount(who[in_window], minlength=n)[index].astype(np.int64)
    recent_count = np.bincount(who[recent], minlength=n)[index]
    monetary = np.bincount(who[in_window], weights=paid[in_window], minlength=n)[index].astype(
        np.float64
    )
    lifetime = np.maximum(np.bincount(who, weights=paid, minlength=n)[index], 0.0).astype(
        np.float64
    )
    recency_days = (now - last[index]) / DAY_S
    first_days = (now - first[index]) / DAY_S

    r = quintile_scores(-recency_days)
    f = quintile_scores(frequency)
    m = quintile_scores(monetary)

    older_count = frequency - recent_count
    rising = recent_count * (cfg.window_days - cfg.recent_days) > older_count * cfg.recent_days
    new = first_days <= cfg.recent_days
    segment = np.select(
        [
            recency_days >= cfg.dormant_days,
            (r >= cfg.loyal_min_r) & (f >= cfg.loyal_min_f),
            (r >= cfg.growing_min_r) & (f <= cfg.growing_max_f) & (new | rising),
        ],
        ["dormant", "loyal", "growing"],
        default="regular",
    )

    ordered = np.sort(monetary)
    richer = len(monetary) - np.searchsorted(ordered, monetary, side="right")
    vip_places = max(1, round(cfg.vip_share * len(monetary)))
    tier = np.select(
        [
            (monetary >= cfg.vip_min_spend)
            & (frequency >= cfg.vip_min_checkouts)
            & (richer < vip_places),
            (m >= cfg.gold_min_m) & (f >= cfg.gold_min_f) & (monetary >= cfg.gold_min_spend),
            ((m >= cfg.silver_min_m) | (f >= cfg.silver_min_f))
            & (monetary >= cfg.silver_min_spend),
        ],
        ["vip", "gold", "silver"],
        default="member",
    )

    return RfmResult(
        now=now,
        index=index,
        recency_days=recency_days,
        frequency=frequency,
        monetary=monetary,
        lifetime_value=lifetime,
        first_days=first_days,
        r=r,
        f=f,
        m=m,
        segment=[str(s) for s in segment],
        tier=[str(t) for t in tier],
    )
