"""Open staff alerts: who was paged, who answered, and when.

An alert lives from its first page to ``done`` (or its last escalation with no
answer, plus a grace period). Escalation timers name the alert and the step; a
timer finding the alert acknowledged or closed does nothing, which is how an
ack stops an escalation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from floorwalker.rules.model import AlertSpec


@dataclass(slots=True)
class OpenAlert:
    id: str
    store: str
    rule: str
    spec: AlertSpec
    zone: str
    message: str
    created: float
    source_key: str
    shopper: str | None
    bell: str | None
    summary: dict[str, str] | None
    advisor: str | None
    step: int = 1
    bands: list[str] = field(default_factory=list)
    declined: set[str] = field(default_factory=set)
    acked_at: float | None = None
    acked_by: str | None = None
    closed_at: float | None = None

    @property
    def answered(self) -> bool:
        return self.acked_at is not None or self.closed_at is not None

    def to_record(self) -> dict[str, Any]:
        """Everything but the spec, which is found again by rule id on restore."""
        return {
            "id": self.id,
            "store": self.store,
            "rule": self.rule,
            "zone": self.zone,
            "message": self.message,
            "created": self.created,
            "source_key": self.source_key,
            "shopper": self.shopper,
            "bell": self.bell,
            "summary": self.summary,
            "advisor": self.advisor,
            "step": self.step,
            "bands": list(self.bands),
            "declined": sorted(self.declined),
            "acked_at": self.acked_at,
            "acked_by": self.acked_by,
            "closed_at": self.closed_at,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any], spec: AlertSpec) -> OpenAlert:
        return cls(
            id=rec["id"],
            store=rec["store"],
            rule=rec["rule"],
            spec=spec,
            zone=rec["zone"],
            message=rec["message"],
            created=float(rec["created"]),
            source_key=rec["source_key"],
            shopper=rec.get("shopper"),
            bell=rec.get("bell"),
            summary=rec.get("summary"),
            advisor=rec.get("advisor"),
            step=int(rec.get("step", 1)),
            bands=list(rec.get("bands", [])),
            declined=set(rec.get("declined", [])),
            acked_at=rec.get("acked_at"),
            acked_by=rec.get("acked_by"),
            closed_at=rec.get("closed_at"),
        )


class AlertJournal(Protocol):
    """Where open alerts are kept durably, so a restart neither loses nor repeats a step.

    The engine writes through on every change, before the page it decided is
    published; a runner restores with :meth:`Engine.restore_alerts`.
    """

    def save(self, alert: OpenAlert) -> None: ...

    def drop(self, store: str, alert_id: str) -> None: ...


class NoJournal:
    """Replay and tests: alerts live and die with the process."""

    def save(self, alert: OpenAlert) -> None:
        return None

    def drop(self, store: str, alert_id: str) -> None:
        return None


class AlertBook:
    """Open and recently closed alerts of one store."""

    __slots__ = ("alerts", "open_by_source")

    def __init__(self) -> None:
        self.alerts: dict[str, OpenAlert] = {}
        self.open_by_source: dict[tuple[str, str], str] = {}
        """(rule, source key) -> alert id, while unanswered: one open alert per bell and rule"""

    def add(self, alert: OpenAlert) -> None:
        self.alerts[alert.id] = alert
        self.open_by_source[(alert.rule, alert.source_key)] = alert.id

    def open_for(self, rule: str, source_key: str) -> OpenAlert | None:
        alert_id = self.open_by_source.get((rule, source_key))
        return None if alert_id is None else self.alerts.get(alert_id)

    def answered(self, alert: OpenAlert) -> None:
        self.open_by_source.pop((alert.rule, alert.source_key), None)

    def expire(self, now: float, keep_s: float) -> list[str]:
        """Forget alerts closed, or created and never answered, more than ``keep_s`` ago."""
        doomed = [
            a.id
            for a in self.alerts.values()
            if now - (a.closed_at if a.closed_at is not None else a.created) > keep_s
        ]
        for alert_id in doomed:
            alert = self.alerts.pop(alert_id)
            self.answered(alert)
        return doomed

    def open_count(self) -> int:
        return sum(1 for a in self.alerts.values() if a.closed_at is None)
