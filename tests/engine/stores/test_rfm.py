"""RFM scoring on hand-built histories: quintiles, segments and tiers at their boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from floorwalker.engine.stores.rfm import DAY_S, RfmResult, RfmSettings, quintile_scores, score

NOW = 1_750_000_000.0


def history(shoppers: dict[str, list[tuple[float, float]]]) -> tuple[list[str], RfmResult]:
    """Score ``name -> [(days ago, total), ...]``; return names in index order and the result."""
    names = list(shoppers)
    idx, ts, total = [], [], []
    for i, name in enumerate(names):
        for days_ago, amount in shoppers[name]:
            idx.append(i)
            ts.append(NOW - days_ago * DAY_S)
            total.append(amount)
    return names, score(np.array(idx), np.array(ts), np.array(total), NOW, n_shoppers=len(names))


def by_name(names: list[str], result: RfmResult) -> dict[str, int]:
    return {names[int(i)]: row for row, i in enumerate(result.index)}


def visits(*days_ago: float, amount: float = 10.0) -> list[tuple[float, float]]:
    return [(d, amount) for d in days_ago]


# --------------------------------------------------------------------------- quintiles


def test_quintiles_of_distinct_values_are_exact() -> None:
    assert quintile_scores([10, 20, 30, 40, 50]).tolist() == [1, 2, 3, 4, 5]
    assert quintile_scores(range(10)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert quintile_scores([50, 10, 40, 20, 30]).tolist() == [5, 1, 4, 2, 3]


def test_quintiles_survive_ties_and_tiny_populations() -> None:
    assert quintile_scores([]).tolist() == []
    assert quintile_scores([7.0]).tolist() == [3]
    assert quintile_scores([7.0, 7.0, 7.0]).tolist() == [3, 3, 3]
    assert quintile_scores([1.0, 2.0]).tolist() == [2, 4]
    tied = quintile_scores([0, 1, 1, 1, 3, 6, 7, 8, 9, 10]).tolist()
    assert tied == [1, 2, 2, 2, 3, 3, 4, 4, 5, 5]


# --------------------------------------------------------------------------- segments

# Ten shoppers. Recency ranks give R = 5, 5, 4, 4 to the four most recent
# (1, 2, 3, 4 days) and 3 to the next two; frequency counts in the year
# [10, 9, 1, 3, 8, 7, 6, 1, 0, 1] give F 5, 5, 2, 3, 4, 4, 3, 2, 1, 2.
POPULATION = {
    "loyal-1": visits(1, 20, 50, 80, 110, 140, 170, 200, 230, 260),
    "loyal-2": visits(2, 30, 70, 110, 150, 190, 230, 270, 310),
    "new": visits(3),  # first ever checkout 3 days ago
    "rising": visits(4, 10, 300),  # 2 in the last 90 days vs 1 in the 275 before
    "often-not-lately": visits(20, 40, 60, 80, 100, 120, 140, 160),  # R = 3
    "steady": visits(25, 200, 220, 240, 260, 280, 300),
    "dormant-exactly": visits(180, 200, 250, 300, 350, 360),  # 180.0 days: dormant
    "almost-dormant": visits(179.99, 400),
    "long-gone": visits(500, 600),
    "dormant-190": visits(190),
}


def test_segments_follow_the_documented_rules() -> None:
    names, result = history(POPULATION)
    rows = by_name(names, result)
    segment = {name: result.segment[row] for name, row in rows.items()}
    assert segment == {
        "loyal-1": "loyal",
        "loyal-2": "loyal",
        "new": "growing",
        "rising": "growing",
        "often-not-lately": "regular",
        "steady": "regular",
        "dormant-exactly": "dormant",
        "almost-dormant": "regular",
        "long-gone": "dormant",
        "dormant-190": "dormant",
    }
    r = {name: int(result.r[row]) for name, row in rows.items()}
    f = {name: int(result.f[row]) for name, row in rows.items()}
    assert (r["loyal-1"], r["loyal-2"], r["new"], r["rising"]) == (5, 5, 4, 4)
    assert (f["new"], f["rising"], f["often-not-lately"], f["long-gone"]) == (2, 3, 4, 1)
    row = rows["long-gone"]
    assert result.frequency[row] == 0 and result.monetary[row] == 0.0
    assert result.recency_days[row] == pytest.approx(500.0)


def test_recent_but_slowing_is_regular_not_growing() -> None:
    shoppers = dict(POPULATION)
    # Recent (R = 4), F = 3, but 1 checkout in 90 days vs 4 in the 275 before: not rising.
    shoppers["rising"] = visits(4, 100, 150, 200, 300)
    names, result = history(shoppers)
    row = by_name(names, result)["rising"]
    assert (int(result.r[row]), int(result.f[row])) == (4, 3)
    assert result.segment[row] == "regular"


def test_a_lone_shopper_is_scored_and_dormancy_is_absolute() -> None:
    _, result = history({"only": visits(10, 20)})
    assert (int(result.r[0]), int(result.f[0]), int(result.m[0])) == (3, 3, 3)
    assert result.segment == ["regular"]
    _, gone = history({"only": visits(200, 210)})
    assert gone.segment == ["dormant"]


def test_checkouts_after_now_are_ignored_and_unseen_shoppers_unscored() -> None:
    result = score(
        np.array([0, 1, 1]),
        np.array([NOW - DAY_S, NOW + DAY_S, NOW - 400 * DAY_S]),
        np.array([10.0, 9999.0, 5.0]),
        NOW,
        n_shoppers=3,
    )
    assert result.index.tolist() == [0, 1]  # shopper 2 has no checkout at all
    assert result.frequency.tolist() == [1, 0]  # the future one is not counted
    assert result.lifetime_value.tolist() == [10.0, 5.0]
    assert result.recency_days[1] == pytest.approx(400.0)


def test_window_monetary_and_lifetime_value() -> None:
    _, result = history({"a": [(10, 100.0), (200, 50.0), (400, 1000.0), (20, -30.0)]})
    assert result.frequency.tolist() == [3]
    assert result.monetary.tolist() == [120.0]  # the refund counts, the 400-day-old does not
    assert result.lifetime_value.tolist() == [1120.0]
    _, refunds = history({"b": [(10, -50.0)]})
    assert refunds.lifetime_value.tolist() == [0.0]  # floored


# --------------------------------------------------------------------------- tiers


def fillers(n: int) -> dict[str, list[tuple[float, float]]]:
    return {f"f{i}": [(30.0, 10.0 * i)] for i in range(n)}


def test_vip_is_the_top_two_percent_above_the_minimum() -> None:
    shoppers = fillers(97)  # one checkout each, 0 .. 960 spent
    shoppers["a"] = [(5, 3000.0), (15, 3000.0), (40, 3000.0)]
    shoppers["b"] = [(5, 3000.0), (50, 3000.0)]
    shoppers["c"] = [(5, 2750.0), (50, 2750.0)]  # 3rd of 100: outside the 2 places
    names, result = history(shoppers)
    rows = by_name(names, result)
    tier = {name: result.tier[row] for name, row in rows.items()}
    assert (tier["a"], tier["b"], tier["c"]) == ("vip", "vip", "gold")
    assert sum(t == "vip" for t in result.tier) == 2
    # fillers: one checkout each (97 tied: F = 3), tiers from M and the minimum spends
    f96, f20 = rows["f96"], rows["f20"]
    assert (int(result.m[f96]), int(result.f[f96])) == (5, 3)
    assert tier["f96"] == "silver"  # gold scores, but 960 < the 1000 gold minimum
    assert tier["f19"] == "member"  # 190 < the 200 silver minimum
    assert (int(result.m[f20]), int(result.f[f20])) == (2, 3)
    assert tier["f20"] == "member"  # 200 spent, but neither M >= 3 nor F >= 4
    assert result.counts()["tiers"]["vip"] == 2


def test_vip_needs_the_minimum_spend_and_repeat_purchases() -> None:
    small = fillers(9)
    small["top"] = [(5, 2499.995), (20, 2499.995)]  # 4999.99: not enough
    names, result = history(small)
    assert result.tier[by_name(names, result)["top"]] == "gold"

    small["top"] = [(5, 2500.0), (20, 2500.0)]  # exactly 5000
    names, result = history(small)
    assert result.tier[by_name(names, result)["top"]] == "vip"

    small["top"] = [(5, 20000.0)]  # one big purchase is not a VIP
    names, result = history(small)
    assert result.tier[by_name(names, result)["top"]] != "vip"


def test_tied_top_spenders_share_the_vip_place() -> None:
    shoppers = fillers(8)
    shoppers["x"] = [(5, 3500.0), (9, 3500.0)]
    shoppers["y"] = [(6, 3500.0), (8, 3500.0)]
    names, result = history(shoppers)
    rows = by_name(names, result)
    assert (result.tier[rows["x"]], result.tier[rows["y"]]) == ("vip", "vip")


def test_silver_starts_at_its_minimum_spend() -> None:
    # Frequent small baskets: F = 5 for both, spend 199.99 vs 200.00 a year.
    base = {f"f{i}": [(30.0, 1.0)] for i in range(8)}
    base["just-under"] = [(d, 199.99 / 10) for d in range(1, 11)]
    base["just-at"] = [(d, 20.0) for d in range(1, 11)]
    names, result = history(base)
    rows = by_name(names, result)
    assert result.tier[rows["just-under"]] == "member"
    assert result.tier[rows["just-at"]] == "silver"


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        score(np.array([0, 1]), np.array([1.0]), np.array([1.0]), NOW)
    with pytest.raises(ValueError, match=">= 0"):
        score(np.array([-1]), np.array([1.0]), np.array([1.0]), NOW)
    with pytest.raises(ValueError, match="recent_days"):
        RfmSettings(recent_days=400.0)
    empty = score(np.array([], dtype=np.int64), np.array([]), np.array([]), NOW)
    assert len(empty) == 0 and empty.counts()["segments"]["loyal"] == 0
