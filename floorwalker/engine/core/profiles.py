"""Shopper profiles: the value the core reads, and the JSON Lines loader.

A shopper with no profile is an anonymous first-time visitor without marketing
consent. Profiles are read-mostly: the core looks them up through
:class:`ProfileSource` (a dict here, a cached Redis view in the live runner).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import orjson

from floorwalker.errors import ConfigError, StateError
from floorwalker.rules.model import SEGMENTS, TIERS


@dataclass(frozen=True, slots=True)
class Profile:
    shopper: str
    tier: str = "member"
    segment: str = "regular"
    marketing: bool = False
    birthday: tuple[int, int] | None = None
    """(month, day)"""
    first_visit: float | None = None
    last_visit: float | None = None
    lifetime_value: float = 0.0
    advisor: str | None = None

    def summary(self) -> dict[str, str]:
        """What staff may see: tier and segment, never personal data."""
        return {"tier": self.tier, "segment": self.segment}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "shopper": self.shopper,
            "tier": self.tier,
            "segment": self.segment,
            "consent": {"marketing": self.marketing},
            "lifetime_value": self.lifetime_value,
        }
        if self.birthday is not None:
            out["birthday"] = f"{self.birthday[0]:02d}-{self.birthday[1]:02d}"
        for key in ("first_visit", "last_visit", "advisor"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class ProfileSource(Protocol):
    def get(self, shopper: str) -> Profile | None: ...

    def record_visit(self, shopper: str, at: float) -> None:
        """A past visit that started at ``at``: ``last_visit`` (and a missing
        ``first_visit``) move to it.

        The engine calls this when a visit becomes the *previous* one (the next
        visit starts, or the engine's 24 h visit memory lets go of it), so rules
        during a visit always see the profile as it was before that visit.
        """
        ...


def parse_profile(obj: Mapping[str, Any]) -> Profile:
    """Build a profile from one JSON object; raise ValueError with a readable message."""
    shopper = obj.get("shopper")
    if not isinstance(shopper, str) or not shopper:
        raise ValueError("`shopper` (a non-empty string token) is required")
    tier = obj.get("tier", "member")
    if tier not in TIERS:
        raise ValueError(f"`tier` must be one of {', '.join(TIERS)}, got {tier!r}")
    segment = obj.get("segment", "regular")
    if segment not in SEGMENTS:
        raise ValueError(f"`segment` must be one of {', '.join(SEGMENTS)}, got {segment!r}")
    consent = obj.get("consent") or {}
    if not isinstance(consent, Mapping):
        raise ValueError('`consent` must be an object like {"marketing": true}')
    return Profile(
        shopper=shopper,
        tier=tier,
        segment=segment,
        marketing=consent.get("marketing") is True,
        birthday=_birthday(obj.get("birthday")),
        first_visit=_number(obj, "first_visit"),
        last_visit=_number(obj, "last_visit"),
        lifetime_value=_number(obj, "lifetime_value") or 0.0,
        advisor=str(obj["advisor"]) if obj.get("advisor") else None,
    )


def _birthday(raw: Any) -> tuple[int, int] | None:
    if raw is None:
        return None
    try:
        month_s, day_s = str(raw).split("-")
        month, day = int(month_s), int(day_s)
    except ValueError:
        raise ValueError(f"`birthday` must be MM-DD, got {raw!r}") from None
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ValueError(f"`birthday` must be MM-DD, got {raw!r}")
    return month, day


def _number(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"`{key}` must be a number, got {value!r}")
    return float(value)


def iter_profiles(path: str | Path) -> Iterator[Profile]:
    """Yield profiles from a JSON Lines file; raise ConfigError with file:line on a bad line."""
    p = Path(path)
    try:
        lines = p.read_bytes().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read profiles: {exc}", file=str(p)) from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("each line must be a JSON object")
            yield parse_profile(obj)
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise ConfigError(str(exc), file=str(p), line=number) from exc


class ProfileBook:
    """An in-memory :class:`ProfileSource`."""

    def __init__(self, profiles: Mapping[str, Profile] | None = None) -> None:
        self._profiles: dict[str, Profile] = dict(profiles or {})

    @classmethod
    def load(cls, path: str | Path) -> ProfileBook:
        return cls({p.shopper: p for p in iter_profiles(path)})

    def get(self, shopper: str) -> Profile | None:
        return self._profiles.get(shopper)

    def record_visit(self, shopper: str, at: float) -> None:
        profile = self._profiles.get(shopper)
        if profile is None:
            return  # anonymous shoppers get no profile from being seen
        self._profiles[shopper] = replace(
            profile,
            last_visit=at if profile.last_visit is None else max(profile.last_visit, at),
            first_visit=profile.first_visit if profile.first_visit is not None else at,
        )

    def put(self, profile: Profile) -> None:
        self._profiles[profile.shopper] = profile

    def snapshot(self) -> bytes:
        """Every profile as JSON Lines bytes (replay saves what its visits changed)."""
        return b"".join(orjson.dumps(p.to_json()) + b"\n" for p in self._profiles.values())

    def restore(self, data: bytes) -> None:
        """Replace the book with one :meth:`snapshot` wrote."""
        try:
            rows = [orjson.loads(line) for line in data.splitlines() if line.strip()]
            profiles = [parse_profile(r) for r in rows]
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
            raise StateError(f"saved profiles are damaged: {exc}") from exc
        self._profiles = {p.shopper: p for p in profiles}

    def forget(self, shopper: str) -> bool:
        return self._profiles.pop(shopper, None) is not None

    def __len__(self) -> int:
        return len(self._profiles)
