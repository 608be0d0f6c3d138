"""What the core decides: actions to publish, and the record of every decision.

Action ids are derived from what caused the action (rule, store, subject and the
triggering event or moment), never from a counter or a clock, so the same input
gives the same ids on every run and a retried publish keeps its id. Coupon codes
are derived from the action id the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, NamedTuple

from floorwalker.devices.topics import alert_topic, offer_topic


def stable_id(prefix: str, *parts: str) -> str:
    """A 64-bit id from what caused the action (hex: base64's b32 is pure Python, slow)."""
    return prefix + hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def coupon_code(action_id: str, prefix: str = "") -> str:
    """The first 12 base32 symbols of a digest, as ``XXXX-XXXX-XXXX``.

    Spelled out rather than ``base64.b32encode``, which is pure Python and was
    2 % of a large catalog's time; the codes are the same.
    """
    digest = hashlib.blake2b(("coupon\x1f" + action_id).encode(), digest_size=10).digest()
    n = int.from_bytes(digest, "big") >> 20  # the top 60 bits: 12 symbols of 5 bits
    a = _B32
    body = "".join([a[(n >> s) & 31] for s in range(55, -1, -5)])
    return f"{prefix}{body[:4]}-{body[4:8]}-{body[8:12]}"


class Offer(NamedTuple):
    """A coupon for a shopper: ``fw/{store}/shopper/{shopper}/offer``."""

    id: str
    store: str
    shopper: str
    ts: float
    rule: str
    offer: str
    code: str
    message: str
    expires: float

    @property
    def delivery_id(self) -> str:
        """What a retry keeps: the action id (one coupon, one message)."""
        return self.id

    def topic(self, prefix: str = "fw") -> str:
        return offer_topic(self.store, self.shopper, prefix=prefix)

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "rule": self.rule,
            "offer": self.offer,
            "code": self.code,
            "message": self.message,
            "expires": self.expires,
        }


class Alert(NamedTuple):
    """A staff alert: ``fw/{store}/band/{band}/alert``."""

    id: str
    store: str
    band: str
    ts: float
    rule: str
    priority: str
    zone: str
    message: str
    step: int
    shopper: dict[str, str] | None

    @property
    def delivery_id(self) -> str:
        """Unique per band and step; the alert ``id`` itself is shared by all of them."""
        return f"{self.id}/{self.step}/{self.band}"

    def topic(self, prefix: str = "fw") -> str:
        return alert_topic(self.store, self.band, prefix=prefix)

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "ts": self.ts,
            "rule": self.rule,
            "priority": self.priority,
            "zone": self.zone,
            "message": self.message,
            "step": self.step,
        }
        if not self.zone:
            del out["zone"]  # no zone known (a store with no placed terminal nor checkout zone)
        if self.shopper is not None:
            out["shopper"] = self.shopper
        return out


Action = Offer | Alert


def local_iso(ts: float, tz: tzinfo) -> str:
    """``ts`` as ISO 8601 in store time, to the millisecond: 2026-11-23T08:31:02.120+08:00."""
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")


def wire_payload(action: Action, tz: tzinfo | None) -> dict[str, Any]:
    """What runners publish and write: the contract payload plus ``ts_local``, the ``ts``
    in the store's time (payloads may carry fields beyond the contract's; receivers
    ignore the ones they do not know)."""
    out = action.payload()
    if tz is not None:
        out["ts_local"] = local_iso(action.ts, tz)
    return out


@dataclass(frozen=True, slots=True)
class Decision:
    """Why a candidate action was sent or suppressed: the engine's audit trail."""

    ts: float
    store: str
    rule: str
    kind: str
    """``offer`` or ``alert``"""
    subject: str
    """shopper token, or the alert's source (bell, zone) when there is no shopper"""
    sent: bool
    reason: str
    """``sent``, or the suppression reason (``cap``, ``holdout``, ``condition:tier`` ...)"""
    action_id: str
    candidate: str | None = None
    """The firing this decision belongs to (``c-`` + a stable id of rule, store and cause):
    every action of one firing shares it, so reports count candidates, not actions.
    None for follow-ups of an alert already decided (escalation steps, re-routes)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "store": self.store,
            "rule": self.rule,
            "kind": self.kind,
            "subject": self.subject,
            "outcome": "sent" if self.sent else "suppressed",
            "reason": self.reason,
            "action_id": self.action_id,
            "candidate": self.candidate,
        }


AUDIENCE_REASONS = frozenset({"no_consent", "no_shopper"})
"""Suppressions that say "not this rule's audience", besides ``condition:*`` and ``unless:*``."""


def reason_class(reason: str) -> str:
    """``sent``, ``audience`` (wrong audience: conditions, consent), ``holdout`` or ``blocked``
    (a guard, the schedule, arbitration or staffing stopped an action meant for this one)."""
    if reason == "sent":
        return "sent"
    if reason == "holdout":
        return "holdout"
    if is_condition(reason) or reason in AUDIENCE_REASONS:
        return "audience"
    return "blocked"


def is_condition(reason: str) -> bool:
    """A suppression by the rule's own ``if`` / ``unless`` conditions (once per candidate)."""
    return reason.startswith(("condition:", "unless:"))
