"""Holdout lift: the difference of two conversion rates with a 95 % confidence interval.

Treated shoppers (sent the rule's offer or alert) are compared with holdout
shoppers (held out by the rule's ``holdout``, deterministic per shopper and rule).
The lift is the difference of their conversion rates, ``p_t - p_h``, in
proportion points. Its interval is **Newcombe's hybrid score interval** (method
10 of R. G. Newcombe, "Interval estimation for the difference between
independent proportions", Statistics in Medicine 17, 1998): each rate gets its
Wilson score interval ``[l, u]`` and

    low  = d - sqrt((p_t - l_t)^2 + (u_h - p_h)^2)
    high = d + sqrt((u_t - p_t)^2 + (p_h - l_h)^2)

It stays inside [-1, 1], behaves at rates near 0 or 1 and with small groups,
where the simple Wald interval ``d +- z * sqrt(p_t q_t / n_t + p_h q_h / n_h)``
is too narrow or degenerate (:func:`wald_difference` is kept for comparison).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054
"""The two-sided 95 % quantile of the standard normal distribution."""


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson's score interval for ``successes`` of ``n`` (n > 0)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denominator = 1 + z2 / n
    return Interval(
        max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)
    )


def newcombe_difference(
    treated: int, n_treated: int, control: int, n_control: int, z: float = Z95
) -> Interval:
    """Newcombe's hybrid score interval (method 10) for ``treated/n_t - control/n_c``."""
    p1, p2 = treated / n_treated, control / n_control
    w1, w2 = wilson(treated, n_treated, z), wilson(control, n_control, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - w1.low) ** 2 + (w2.high - p2) ** 2)
    high = d + math.sqrt((w1.high - p1) ** 2 + (p2 - w2.low) ** 2)
    return Interval(low, high)


def wald_difference(
    treated: int, n_treated: int, control: int, n_control: int, z: float = Z95
) -> Interval:
    """The simple (Wald) interval for a difference of proportions, for comparison only."""
    p1, p2 = treated / n_treated, control / n_control
    se = math.sqrt(p1 * (1 - p1) / n_treated + p2 * (1 - p2) / n_control)
    return Interval(p1 - p2 - z * se, p1 - p2 + z * se)


@dataclass(frozen=True, slots=True)
class Lift:
    """Conversion of treated against holdout shoppers of one rule (and day)."""

    treated: int
    treated_converted: int
    holdout: int
    holdout_converted: int

    @property
    def measurable(self) -> bool:
        """Both groups have someone in them."""
        return self.treated > 0 and self.holdout > 0

    @property
    def treated_rate(self) -> float | None:
        return self.treated_converted / self.treated if self.treated else None

    @property
    def holdout_rate(self) -> float | None:
        return self.holdout_converted / self.holdout if self.holdout else None

    @property
    def difference(self) -> float | None:
        """``p_t - p_h`` (proportion points), None without both groups."""
        if not self.measurable:
            return None
        return self.treated_converted / self.treated - self.holdout_converted / self.holdout

    @property
    def interval(self) -> Interval | None:
        """The 95 % Newcombe interval of :attr:`difference`."""
        if not self.measurable:
            return None
        return newcombe_difference(
            self.treated_converted, self.treated, self.holdout_converted, self.holdout
        )

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        ci = self.interval
        return ci is not None and (ci.low > 0 or ci.high < 0)


__all__ = ["Z95", "Interval", "Lift", "newcombe_difference", "wald_difference", "wilson"]
