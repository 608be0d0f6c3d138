"""What presence changes trigger: visits, zone enters and leaves, dwells.

The presence tracker says *where* someone is; this module turns its changes
into signals for the rules and keeps the timers presence needs: a dwell timer
per zone threshold a rule listens for, and a leave timer only where a rule
listens for ``leave`` (and for staff bands), since a timer per shopper per zone
is the single biggest cost of presence otherwise.
"""

from __future__ import annotations

from floorwalker.engine.core.context import Context
from floorwalker.engine.core.index import EMPTY, Listeners
from floorwalker.engine.core.ports import Schedule
from floorwalker.engine.core.presence import Change
from floorwalker.engine.core.profiles import ProfileSource
from floorwalker.engine.core.state import StoreState
from floorwalker.engine.core.triggers import Triggers

DWELL_POLL_S = 0.25
"""A dwell due while the shopper is unseen is looked at again this much later: it then
fires at most this long after their next sighting (1 s put most of those firings over
the 1 s p95 target of `bench accuracy`; the re-checks are few, only for dwells due
while unseen)."""


class Movement:
    __slots__ = ("profiles", "schedule", "st", "triggers")

    def __init__(
        self, st: StoreState, triggers: Triggers, schedule: Schedule, profiles: ProfileSource
    ) -> None:
        self.st = st
        self.triggers = triggers
        self.schedule = schedule
        self.profiles = profiles

    def staff_sighting(self, subject: str, zone: str, ts: float, rssi: int, beacon: str) -> None:
        for change in self.st.staff.presence.observe(subject, zone, ts, rssi, beacon):
            if change.kind == "enter":
                self.watch_leave(subject, staff=True)

    def on_change(self, change: Change) -> None:
        st = self.st
        kind, subject, zone, at = change
        index = st.index
        if kind == "visit":
            previous = st.begin_visit(subject, at)
            if previous is not None:
                self.profiles.record_visit(subject, previous)
            if index.visit:
                self._signal(
                    index.visit, "visit_start", subject, zone, at, f"visit:{subject}:{at!r}"
                )
        elif kind == "enter":
            listeners = index.enter.get(zone, EMPTY)
            if listeners:
                self._signal(
                    listeners, "enter", subject, zone, at, f"enter:{subject}:{zone}:{at!r}"
                )
            self.arm_dwell(subject, zone, at, after=float("-inf"))
            if zone in index.leave:
                self.watch_leave(subject, staff=False)
        else:
            listeners = index.leave.get(zone, EMPTY)
            if listeners:
                self._signal(
                    listeners, "leave", subject, zone, at, f"leave:{subject}:{zone}:{at!r}"
                )

    def _signal(
        self, listeners: Listeners, kind: str, subject: str, zone: str, at: float, source: str
    ) -> None:
        """A presence signal some rule listens for (most enters and leaves have none: then
        no context is built, nor its source, whose float repr costs more than the rest)."""
        ctx = Context(kind, self.st.store, at, source)
        ctx.shopper, ctx.zone = subject, zone
        self.triggers.dispatch(listeners, ctx)

    def arm_dwell(self, subject: str, zone: str, since: float, after: float) -> None:
        """Set the timer for the first dwell threshold of ``zone`` due after ``after``."""
        st = self.st
        for threshold, _ in st.index.dwell.get(zone, ()):
            if since + threshold > after:
                args = (st.store, subject, zone, since, threshold, st.generation)
                self.schedule(since + threshold, "dwell", args)
                return

    def rearm_dwells(self, after: float) -> None:
        """After a reload: dwells under way continue under the new rules' thresholds."""
        zones = self.st.registry.zones
        for subject, zone, since in self.st.presence.current():
            if zone in zones:
                self.arm_dwell(subject, zone, since, after=after)

    def watch_leave(self, subject: str, *, staff: bool) -> None:
        st = self.st
        tracker = st.staff.presence if staff else st.presence
        watched = st.staff_leave_watch if staff else st.leave_watch
        due = tracker.leave_due(subject)
        if due is not None and subject not in watched:
            watched.add(subject)
            self.schedule(due, "leave", (st.store, subject, staff))

    def on_dwell(self, subject: str, zone: str, since: float, threshold: float, due: float) -> None:
        st = self.st
        tracker = st.presence
        if not tracker.dwell_alive(subject, zone, since):
            return
        if not tracker.dwell_confirmed(subject, zone, since, due):
            # Unseen lately: maybe gone. Look again shortly instead of guessing,
            # until the leave gap says they are gone.
            if not tracker.gone(subject, due):
                args = (st.store, subject, zone, since, threshold, st.generation)
                self.schedule(due + DWELL_POLL_S, "dwell", args)
            return
        ctx = Context("dwell", st.store, due, f"dwell:{subject}:{zone}:{since!r}:{threshold!r}")
        ctx.shopper, ctx.zone = subject, zone
        later: float | None = None
        for t, listeners in st.index.dwell.get(zone, ()):
            if t == threshold:
                self.triggers.dispatch(listeners, ctx)
            elif t > threshold:
                later = t
                break
        if later is not None:
            args = (st.store, subject, zone, since, later, st.generation)
            self.schedule(since + later, "dwell", args)

    def on_leave_timer(self, subject: str, staff: bool, due: float) -> None:
        st = self.st
        tracker = st.staff.presence if staff else st.presence
        watched = st.staff_leave_watch if staff else st.leave_watch
        watched.discard(subject)
        change = tracker.check_leave(subject, due)
        if change is None:
            self.watch_leave(subject, staff=staff)
        elif not staff:
            self.on_change(change)
