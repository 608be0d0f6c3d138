"""The lift maths against published values (Newcombe 1998, Statistics in Medicine 17)."""

from __future__ import annotations

import pytest

from floorwalker.dashboards.report.lift import (
    Lift,
    newcombe_difference,
    wald_difference,
    wilson,
)


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_score_interval(successes: int, n: int, low: float, high: float) -> None:
    ci = wilson(successes, n)
    assert (round(ci.low, 4), round(ci.high, 4)) == (low, high)


@pytest.mark.parametrize(
    ("a", "m", "b", "n", "low", "high"),
    [  # Newcombe's Table II, method 10 (hybrid score)
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
    ],
)
def test_newcombe_hybrid_score_interval(
    a: int, m: int, b: int, n: int, low: float, high: float
) -> None:
    ci = newcombe_difference(a, m, b, n)
    assert (round(ci.low, 4), round(ci.high, 4)) == (low, high)


def test_wald_for_comparison_and_its_degenerate_case() -> None:
    ci = wald_difference(56, 70, 48, 80)
    assert (round(ci.low, 4), round(ci.high, 4)) == (0.0575, 0.3425)
    zero = wald_difference(0, 10, 0, 20)  # Wald collapses to a point; Newcombe does not
    assert zero.low == zero.high == 0.0


def test_lift_of_two_groups() -> None:
    lift = Lift(treated=70, treated_converted=56, holdout=80, holdout_converted=48)
    assert lift.measurable and lift.difference == pytest.approx(0.2)
    assert lift.treated_rate == 0.8 and lift.holdout_rate == 0.6
    assert lift.interval is not None and round(lift.interval.low, 4) == 0.0524
    assert lift.significant
    flat = Lift(10, 5, 10, 5)
    assert flat.difference == 0.0 and not flat.significant
    nobody = Lift(10, 5, 0, 0)
    assert not nobody.measurable and nobody.difference is None and nobody.interval is None
    assert nobody.holdout_rate is None


def test_wilson_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson(3, 0)
    with pytest.raises(ValueError):
        wilson(5, 4)
