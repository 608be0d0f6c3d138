r"""Staff alerts: who was paged, who answered, and when.

The life cycle of an alert::

    open (paged, not answered) --ack--> acknowledged (someone is on it) --done--> done
         \--decline--> passed on at once to the next nearest band (still open)
         \--the escalation chain ends with no answer--> unanswered

Escalation timers name the alert and the step; a timer finding the alert
acknowledged or closed does nothing, which is how an ack stops an escalation.
Only an acknowledged alert makes its band busy, until done or
``busy_timeout_s``; a page nobody answers never does. While an alert is open
or acknowledged, another press of the same bell is ``already_open``; after it
is done or unanswered, a press opens a new alert (a higher priority if the
last one went unanswered). Alerts are forgotten ``alert_keep_s`` after they
end.
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
    ended_at: float | None = None
    """When the escalation chain ran out with nobody answering (state ``unanswered``)."""
    priority: str = ""
    """As paged: the rule's, or one higher when the source's last alert went unanswered."""

    def __post_init__(self) -> None:
        if not self.priority:
            self.priority = self.spec.priority

    @property
    def answered(self) -> bool:
        return self.acked_at is not None or self.closed_at is not None

    @property
    def state(self) -> str:
        if self.closed_at is not None:
            return "done"
        if self.acked_at is not None:
            return "acknowledged"
        return "unanswered" if self.ended_at is not None else "open"

    @property
    def paged_band(self) -> str | None:
        """The band holding the page now (the latest paged that did not decline)."""
        for band in reversed(self.bands):
            if band not in self.declined:
                return band
        return None

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
            "ended_at": self.ended_at,
            "priority": self.priority,
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
            ended_at=rec.get("ended_at"),
            priority=str(rec.get("priority") or spec.priority),
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


STATES = ("open", "acknowledged", "unanswered", "done")

_PRIORITIES = ("low", "normal", "high", "urgent")


def raised(priority: str) -> str:
    """One step up (``urgent`` stays ``urgent``)."""
    k = _PRIORITIES.index(priority) if priority in _PRIORITIES else 1
    return _PRIORITIES[min(k + 1, len(_PRIORITIES) - 1)]


class AlertBook:
    """The alerts of one store, and what routing needs to know about them.

    Routing asks two things of every page: which bands are busy on an
    acknowledged alert, and how many open pages each band holds. Both are kept
    up to date as alerts change (:meth:`release` before a change to an alert's
    state or bands, :meth:`hold` after), so a page costs the same whether the
    day has seen ten alerts or ten thousand.
    """

    __slots__ = (
        "acked",
        "alerts",
        "held",
        "last_paged",
        "last_raised",
        "open_by_source",
        "unanswered",
    )

    def __init__(self) -> None:
        self.alerts: dict[str, OpenAlert] = {}
        self.held: dict[str, int] = {}
        """band -> open alerts whose page it holds now"""
        self.acked: dict[str, OpenAlert] = {}
        """Alerts acknowledged and not yet done nor ended (their bands may be busy)"""
        self.open_by_source: dict[tuple[str, str], str] = {}
        """(rule, source key) -> alert id, while open: one open alert per bell and rule"""
        self.unanswered: dict[tuple[str, str], float] = {}
        """(rule, source key) -> when its last alert went unanswered (the next one is raised)"""
        self.last_paged: dict[tuple[str, str], float] = {}
        """(rule, band) -> latest page (``band_every``)"""
        self.last_raised: dict[tuple[str, str], float] = {}
        """(rule, zone) -> latest alert raised there (``group_within``)"""

    def add(self, alert: OpenAlert) -> None:
        known = self.alerts.get(alert.id)
        if known is not None:
            self.release(known)
        self.alerts[alert.id] = alert
        self.open_by_source[(alert.rule, alert.source_key)] = alert.id
        self.hold(alert)

    def release(self, alert: OpenAlert) -> None:
        """Take the alert out of the routing figures (before changing it)."""
        band = holder(alert)
        if band is not None:
            n = self.held[band] - 1
            if n:
                self.held[band] = n
            else:
                del self.held[band]
        self.acked.pop(alert.id, None)

    def hold(self, alert: OpenAlert) -> None:
        """Put the alert back into the routing figures (after changing it)."""
        band = holder(alert)
        if band is not None:
            self.held[band] = self.held.get(band, 0) + 1
        elif alert.acked_at is not None and alert.closed_at is None and alert.ended_at is None:
            self.acked[alert.id] = alert

    def reindex(self) -> None:
        """Rebuild the routing figures from :attr:`alerts` (after a restore wrote them)."""
        self.held.clear()
        self.acked.clear()
        for alert in self.alerts.values():
            self.hold(alert)

    def open_for(self, rule: str, source_key: str) -> OpenAlert | None:
        alert_id = self.open_by_source.get((rule, source_key))
        return None if alert_id is None else self.alerts.get(alert_id)

    def answered(self, alert: OpenAlert) -> None:
        self.open_by_source.pop((alert.rule, alert.source_key), None)

    def expire(self, now: float, keep_s: float) -> list[str]:
        """Forget alerts done, or created and never answered, more than ``keep_s`` ago."""
        doomed = [
            a.id
            for a in self.alerts.values()
            if now - (a.closed_at if a.closed_at is not None else a.created) > keep_s
        ]
        for alert_id in doomed:
            alert = self.alerts.pop(alert_id)
            self.release(alert)
            self.answered(alert)
        for table in (self.unanswered, self.last_paged, self.last_raised):
            for key in [k for k, t in table.items() if now - t > keep_s]:
                del table[key]
        return doomed

    def counts(self) -> dict[str, int]:
        """Alerts by state (done ones included until they are forgotten)."""
        out = dict.fromkeys(STATES, 0)
        for a in self.alerts.values():
            out[a.state] += 1
        return out

    def busy_bands(self, now: float, timeout_s: float) -> frozenset[str]:
        """Bands on an acknowledged alert, not done, acknowledged less than the timeout ago."""
        return frozenset(
            a.acked_by
            for a in self.acked.values()
            if a.acked_by is not None and a.acked_at is not None and now - a.acked_at < timeout_s
        )

    def load(self) -> dict[str, int]:
        """Open alerts each band holds now (the fewer, the likelier it gets the next)."""
        return dict(self.held)


def holder(alert: OpenAlert) -> str | None:
    """The band holding an open alert's page (None once acknowledged, done or ended)."""
    if alert.acked_at is None and alert.closed_at is None and alert.ended_at is None:
        return alert.paged_band
    return None
