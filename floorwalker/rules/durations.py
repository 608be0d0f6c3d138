"""Durations as marketers write them: ``10s``, ``30m``, ``2h``, ``14d``, ``1h30m`` or seconds.

Units go from the largest to the smallest, each at most once, with no spaces, so
that one spelling has one meaning and the JSON Schema pattern below accepts
exactly what :func:`parse_duration` accepts.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_UNIT_SECONDS: tuple[tuple[str, float], ...] = (
    ("d", 86400.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
)

DURATION_PATTERN = (
    r"^(?:[0-9]+(?:\.[0-9]+)?|(?=[0-9])"
    + "".join(f"(?:{_NUMBER}{unit})?" for unit, _ in _UNIT_SECONDS)
    + ")$"
)
"""A duration written as text (the JSON Schema ``pattern``)."""

_UNITS_RE = re.compile(
    "^" + "".join(f"(?:(?P<{unit}>{_NUMBER}){unit})?" for unit, _ in _UNIT_SECONDS) + "$"
)
_BARE_RE = re.compile(f"^{_NUMBER}$")

DURATION_HINT = "write 10s, 5m, 2h or 1d (or combine them, e.g. 1h30m)"


class DurationError(ValueError):
    """A value that is not a positive duration; ``str()`` is a sentence for a marketer."""


def parse_duration(value: str | int | float, *, allow_zero: bool = False) -> float:
    """Seconds in ``value``; raises :class:`DurationError` unless it is a duration > 0.

    Rule files never allow zero; ``allow_zero`` is for settings where 0 means "none".
    """
    seconds = _seconds(value)
    if not math.isfinite(seconds):
        raise DurationError(f"`{value}` is not a duration; {DURATION_HINT}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise DurationError(f"`{value}` is not longer than zero; a duration must be positive")
    return seconds


def _seconds(value: str | int | float) -> float:
    # bool is an int in Python, but `true` is never a duration.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DurationError(f"`{value}` is not a duration; {DURATION_HINT}")
    if not isinstance(value, str):
        return float(value)
    if _BARE_RE.match(value):
        return float(value)
    match = _UNITS_RE.match(value)
    if not value or match is None:
        raise DurationError(f"`{value}` is not a duration; {DURATION_HINT}")
    return sum(float(match[unit]) * size for unit, size in _UNIT_SECONDS if match[unit])


def format_duration(seconds: float) -> str:
    """The shortest spelling of ``seconds`` that :func:`parse_duration` reads back exactly."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"cannot format {seconds!r} as a duration")
    if seconds == 0:
        return "0s"
    whole = int(seconds)
    if whole != seconds:
        # repr() is the shortest exact spelling; Decimal keeps it out of 1e-07 notation.
        return f"{Decimal(repr(seconds)):f}s"
    parts: list[str] = []
    rest = whole
    for unit, size in _UNIT_SECONDS:
        amount, rest = divmod(rest, int(size))
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
