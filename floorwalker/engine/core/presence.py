"""Debounced zone presence from noisy beacon sightings, and store visits.

A phone (or staff band) near the boundary of two zones hears both zones'
beacons, and RSSI noise of several dB makes the strongest beacon flip from one
sighting to the next. Presence therefore moves only on accumulated evidence:

* **Enter.** A subject with no zone enters zone Z once Z has collected
  ``enter_score`` points, each sighting of Z worth 1 point (2 if at least
  ``strong_rssi``), with no gap over ``candidate_gap_s`` between them. The
  dwell is counted from when the shopper really arrived, not when we became
  sure: the *first* sighting of that run, or earlier when the evidence says so
  (see *Stay start*).
* **Switch.** A subject in zone A moves to B the same way, but every sighting of
  A in between takes a point off B. An occasional weak sighting of a
  neighbouring zone therefore never reaches the threshold, and the dwell in A
  is neither ended nor restarted. A real move stops A's sightings, so B wins
  after about ``enter_score`` sightings.
* **Stay start.** Dwell triggers fire at stay start + T, so the start is
  estimated as well as the sightings allow (``bench accuracy`` measured where
  late firings came from): a run that follows sightings of other zones heard
  after the last one of the current zone ("A A C B B B") starts at the first of
  them, since the subject was on the move from then (a stray sighting of a
  neighbour is as likely in the first report from B as anywhere else); one
  sighting of the old zone inside an entering run ("A B A B B") leaves the run
  alive at no points if it came within 1.5 report intervals of it, where two in
  a row end it; and a run whose first sighting follows a gap of over two report
  intervals (a lost report) starts one interval before it, as the lost report
  may have been the first from the new zone.
* **Leave.** No sighting of the current zone for ``leave_after_s`` means the
  subject left it (at its last sighting). The tracker notices at the next
  sighting, or when the engine asks (:meth:`PresenceTracker.check_leave`) at a
  leave timer; the engine sets such timers only where a rule listens for
  ``leave`` (and for staff), since a timer per shopper per zone is the single
  biggest cost of presence otherwise.
* **Visit.** A visit starts with the first sighting after at least
  ``visit_gap_s`` unseen (DESIGN.md: 30 minutes).

* **Cadence.** Devices report at their own pace: phones about once a second,
  battery wristbands every 2 to 10 s, gateways in batches. Each subject's
  reporting interval is learnt from the gaps between its sightings (or stated
  for a band in the registry, ``report_every``), and the gaps above scale with
  it: evidence may be ``gap_factor`` intervals apart, a sighting of a slow
  device is worth ``interval / nominal_interval_s`` points, capped at 2 (in
  place of the strength bonus, so no single report is a whole ``enter_score``),
  and the leave gap is at least ``gap_factor`` intervals. A band
  reporting every 10 s from one zone is therefore placed there at its second
  report, and is not thought gone between two reports.

Defaults assume phones report about once a second (typical BLE advertising
plus gateway batching): three points is three seconds of consistent evidence
(fast enough for a 5 s dwell rule, long enough that two noise flips in a row
are rare at 6 dB sigma), a 10 s leave gap survives a few missed reports, and
sightings weaker than -95 dBm are at the noise floor and place nobody. At the
nominal interval the cadence rules change nothing.

The tracker is pure: it takes sighting values and times and returns changes;
the engine owns timers and decides what the changes trigger.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class PresenceSettings:
    enter_score: int = 3
    strong_rssi: int = -60
    min_rssi: int = -95
    candidate_gap_s: float = 4.0
    leave_after_s: float = 10.0
    dwell_grace_s: float = 1.0
    """A dwell only fires if the subject was seen in the zone this recently (at least 1.2
    report intervals; else it is checked again every ``DWELL_POLL_S`` until they are seen
    or gone, so it fires just after their next sighting). `bench accuracy` chose it: at
    4 s a shopper who just left still earned the dwell (precision 0.93 at 6 dB noise);
    since the re-check runs every 0.25 s, 1.0 s (1.2 s for a phone) keeps precision
    0.982 where 1.5 s gave 0.981, at fire-time p95 0.50 s."""
    visit_gap_s: float = 1800.0
    nominal_interval_s: float = 1.0
    """The reporting interval the scores above are tuned for (a phone's)."""
    gap_factor: float = 2.5
    """Evidence may be this many of the subject's intervals apart; the leave gap is at
    least this many intervals (one missed report of a slow band is not a leave)."""


INTERVALS: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0)
"""Learnt intervals are rounded to one of these: a shared float per subject costs no memory."""


_LONGEST = 2 * INTERVALS[-1]
"""A gap longer than this (an absence, not a cadence) teaches nothing."""
_BOUNDS = tuple((low * high) ** 0.5 for low, high in itertools.pairwise(INTERVALS))


def quantize(interval: float) -> float:
    """The level of :data:`INTERVALS` nearest to ``interval`` (on a log scale)."""
    return INTERVALS[bisect.bisect_right(_BOUNDS, interval)]


class Change(NamedTuple):
    """A presence change: ``kind`` is ``visit``, ``enter`` or ``leave``."""

    kind: str
    subject: str
    zone: str
    at: float
    """visit: first sighting; enter: dwell start; leave: last sighting in the zone."""


class Candidate:
    """Evidence for a zone the subject may be moving into (exists only while it matters)."""

    __slots__ = ("first", "last", "prev", "score", "zone")

    def __init__(self, zone: str, ts: float) -> None:
        self.zone = zone
        self.first = ts
        self.last = ts
        self.score = 0.0
        self.prev: Candidate | None = None
        """The run this one interrupted: one stray sighting does not erase a run."""


class Presence:
    """One subject's presence state (kept small: one per active shopper)."""

    # In the order the router's fast path reads them (cand, zone, seen, last_seen,
    # last_zone): slots are laid out as listed, so the five share a cache line more
    # often (callgrind: 2.3 % fewer first-level data-cache misses in `bench core`).
    __slots__ = (  # noqa: RUF023
        "cand",
        "zone",
        "seen",
        "last_seen",
        "last_zone",
        "interval",
        "since",
        "prev_visit",
        "visit_start",
    )

    def __init__(self, ts: float, prev_visit: float | None = None) -> None:
        self.zone: str | None = None
        self.since = ts
        """When the dwell in ``zone`` began (first sighting of the run that entered it)."""
        self.last_seen = ts
        """Latest sighting in ``zone``."""
        self.seen = ts
        """Latest sighting anywhere (sightings older than this are stale)."""
        self.last_zone = ""
        """Zone of the latest sighting: zone ids are the registry's own strings, shared by
        every shopper, so remembering one costs nothing per shopper (a beacon id would)."""
        self.cand: Candidate | None = None
        self.interval: float | None = None
        """The subject's reporting interval as learnt (None: not yet, assume nominal)."""
        self.visit_start = ts
        self.prev_visit = prev_visit
        """Start of the visit before this one, if known."""


NO_CHANGES: tuple[Change, ...] = ()
VISIT, ENTER, LEAVE = "visit", "enter", "leave"


_new = tuple.__new__
"""Changes are built by ``tuple.__new__`` straight: Change's own ``__new__`` is a Python
call per change (20,000 of them in `bench core`'s 300,000 events)."""


class PresenceTracker:
    """Presence of many subjects of one store."""

    __slots__ = (
        "_cand_gap",
        "_enter",
        "_gap_factor",
        "_leave_after",
        "_min_rssi",
        "_nominal",
        "_strong",
        "_visit_gap",
        "hints",
        "settings",
        "states",
    )

    def __init__(
        self, settings: PresenceSettings | None = None, hints: dict[str, float] | None = None
    ) -> None:
        self.settings = cfg = settings or PresenceSettings()
        self.states: dict[str, Presence] = {}
        self.hints: dict[str, float] = dict(hints or {})
        """subject -> stated reporting interval (the registry's ``report_every``)"""
        # The sighting slow path reads these on every call: plain slots, not cfg.x.
        self._min_rssi, self._visit_gap = cfg.min_rssi, cfg.visit_gap_s
        self._leave_after, self._gap_factor = cfg.leave_after_s, cfg.gap_factor
        self._nominal, self._cand_gap = cfg.nominal_interval_s, cfg.candidate_gap_s
        self._strong, self._enter = cfg.strong_rssi, cfg.enter_score

    def _interval(self, st: Presence, subject: str) -> float:
        """Stated (the registry knows best), else learnt, else the nominal interval."""
        learnt, hints = st.interval, self.hints
        # A learnt interval is never 0; observe() works this out inline, the same way.
        return hints.get(subject, learnt) or self._nominal if hints else learnt or self._nominal

    def leave_gap(self, st: Presence, subject: str) -> float:
        """How long unseen in its zone means the subject left it (scaled to its cadence)."""
        gap = self._gap_factor * self._interval(st, subject)
        return gap if gap > self._leave_after else self._leave_after

    @staticmethod
    def _off_cadence(st: Presence, ts: float, gap: float) -> float | None:
        """A gap off the learnt cadence: learn from it; return where a run starting now
        may really have started (None: now)."""
        old = st.interval
        if 0.2 <= gap <= _LONGEST:  # repeats (gap ~0) and long absences teach nothing
            if old is None:
                st.interval = quantize(gap)
            else:
                new = quantize(0.6 * old + 0.4 * gap)
                if new == old:
                    # The average moved less than a level: still step one level towards
                    # the gap, or one lost report would leave a phone at 1.5 s for good.
                    k = INTERVALS.index(old)
                    new = INTERVALS[k + 1] if gap > old and k + 1 < len(INTERVALS) else new
                    new = INTERVALS[k - 1] if gap < old and k > 0 else new
                st.interval = new
        # A report went missing: it may have been the first one from here.
        return None if old is None or gap <= 2.0 * old else ts - old

    def observe(
        self, subject: str, zone: str, ts: float, rssi: int, beacon: str
    ) -> tuple[Change, ...]:
        """Take one sighting; return the changes it causes (usually none).

        The engine inlines the commonest case (a newer sighting of the current zone
        with no candidate and no gap) in its hot path; ``tests/devices`` checks the
        two agree. A third of all sightings come here, so it is written for speed:
        the subject's interval is worked out once, settings are slots.
        """
        if rssi < self._min_rssi:
            return NO_CHANGES
        st = self.states.get(subject)
        if st is None:
            return self._new_visit(None, subject, zone, ts, rssi)
        gap = ts - st.seen
        if gap <= 0.0:
            # A repeat (QoS 1 redelivery, two gateways hearing one report) or a
            # report older than one already used: presence is "as of the latest
            # sighting", so stale evidence is dropped rather than rewinding it.
            return NO_CHANGES
        if gap >= self._visit_gap:
            return self._new_visit(st, subject, zone, ts, rssi)
        learnt = st.interval
        start = None
        if learnt is None or not 0.7 * learnt <= gap <= 1.45 * learnt:  # on cadence: as learnt
            start = self._off_cadence(st, ts, gap)
            learnt = st.interval
        st.seen = ts
        st.last_zone = zone
        hints = self.hints
        # A learnt interval is never 0; a stated one (staff bands) wins.
        interval = hints.get(subject, learnt) or self._nominal if hints else learnt or self._nominal
        current = st.zone
        if current is None:
            return self._candidate(st, subject, zone, ts, rssi, interval, start)
        away = ts - st.last_seen
        if away >= self._leave_after and (
            (not hints and learnt is None) or away >= self._gap_factor * interval
        ):
            # Gone long enough to have left (no leave timer was needed to know).
            left = _new(Change, (LEAVE, subject, current, st.last_seen))
            st.zone = st.cand = None
            return (left, *self._candidate(st, subject, zone, ts, rssi, interval))
        if zone != current:
            return self._candidate(st, subject, zone, ts, rssi, interval, start)
        st.last_seen = ts
        cand = st.cand
        if cand is not None:
            nominal = self._nominal
            cand.score -= 1.0 if interval <= nominal else min(2.0, interval / nominal)
            if cand.score <= 0:
                if ts - cand.last <= 1.5 * interval:
                    # "A B A B": the A in between may be the stray, so the run
                    # for B survives it, at no points (two A's in a row end it).
                    cand.score = 0.0
                else:
                    st.cand = None
        return NO_CHANGES

    def _new_visit(
        self, old: Presence | None, subject: str, zone: str, ts: float, rssi: int
    ) -> tuple[Change, ...]:
        st = Presence(ts, None if old is None else old.visit_start)
        self.states[subject] = st
        st.last_zone = zone
        interval = self._interval(st, subject)
        return (
            _new(Change, (VISIT, subject, zone, ts)),
            *self._candidate(st, subject, zone, ts, rssi, interval),
        )

    def _candidate(
        self,
        st: Presence,
        subject: str,
        zone: str,
        ts: float,
        rssi: int,
        interval: float,
        start: float | None = None,
    ) -> tuple[Change, ...]:
        """A sighting of a zone the subject is not in: evidence for moving there."""
        cand = st.cand
        allowed = self._gap_factor * interval
        if allowed < self._cand_gap:
            allowed = self._cand_gap
        if cand is None:
            cand = st.cand = Candidate(zone, ts)
            if start is not None:
                cand.first = start
        elif cand.zone != zone or ts - cand.last > allowed:
            cand = st.cand = self._next_run(cand, zone, ts, allowed, st.last_seen)
        cand.last = ts
        nominal = self._nominal
        if interval <= nominal:
            cand.score += 2 if rssi >= self._strong else 1
        else:
            # A seldom reporter's sighting is worth more, but never a whole enter_score:
            # one report alone moves nobody (its cadence replaces the strength bonus).
            cand.score += min(2.0, interval / nominal)
        if cand.score < self._enter:
            return NO_CHANGES
        left, left_seen = st.zone, st.last_seen
        st.zone = zone
        st.since = since = cand.first
        st.last_seen = ts
        st.cand = None
        enter = _new(Change, (ENTER, subject, zone, since))
        if left is None:
            return (enter,)
        # Left the old zone when last seen there, or when first seen in the new one.
        return (_new(Change, (LEAVE, subject, left, min(left_seen, since))), enter)

    @staticmethod
    def _next_run(
        cand: Candidate | None, zone: str, ts: float, allowed: float, left: float
    ) -> Candidate:
        """The run a sighting of ``zone`` adds to: an interrupted one resumes ("A A B A" is
        evidence for A from its first A, one point less), else a new one starts."""
        back = cand.prev if cand is not None else None
        if back is not None and back.zone == zone and ts - back.last <= allowed:
            back.score = max(0.0, back.score - 1.0)
            back.prev = None
            return back
        new = Candidate(zone, ts)
        if cand is not None and cand.zone != zone and ts - cand.last <= allowed:
            cand.prev = None
            new.prev = cand
            if cand.first >= left:
                # Nothing of the current zone since that run began: the subject was
                # on the move from then ("A B C C C" is in C from the B).
                new.first = cand.first
        return new

    def leave_due(self, subject: str) -> float | None:
        """When the subject will count as gone from its zone if not seen again."""
        st = self.states.get(subject)
        if st is None or st.zone is None:
            return None
        return st.last_seen + self.leave_gap(st, subject)

    def check_leave(self, subject: str, now: float) -> Change | None:
        """At a leave timer: the leave change if the gap really elapsed."""
        st = self.states.get(subject)
        if st is None or st.zone is None:
            return None
        if now - st.last_seen < self.leave_gap(st, subject):
            return None
        change = Change("leave", subject, st.zone, st.last_seen)
        st.zone = None
        st.cand = None
        return change

    def zone_of(self, subject: str, now: float | None = None) -> str | None:
        """The subject's zone; with ``now``, None if unseen for the leave gap by then."""
        st = self.states.get(subject)
        if st is None:
            return None
        if now is not None and now - st.last_seen >= self.leave_gap(st, subject):
            return None
        return st.zone

    def gone(self, subject: str, now: float) -> bool:
        """Unseen in the current zone for the leave gap (whether or not a timer noticed)."""
        st = self.states.get(subject)
        return st is None or st.zone is None or now - st.last_seen >= self.leave_gap(st, subject)

    def dwell_confirmed(self, subject: str, zone: str, since: float, due: float) -> bool:
        """Is the subject still in ``zone`` on the dwell that began at ``since``, seen lately?"""
        st = self.states.get(subject)
        if st is None or st.zone != zone or st.since != since:
            return False
        # Seen within the grace, or within one report of a device that reports seldom.
        grace = max(self.settings.dwell_grace_s, 1.2 * self._interval(st, subject))
        cand = st.cand
        if cand is not None and cand.last > st.last_seen:
            # Seen elsewhere since: halfway to moving there is not "still here" yet.
            return cand.score < 0.5 * self.settings.enter_score and due - st.last_seen <= grace
        return due - st.last_seen <= grace

    def dwell_alive(self, subject: str, zone: str, since: float) -> bool:
        st = self.states.get(subject)
        return st is not None and st.zone == zone and st.since == since

    def current(self) -> list[tuple[str, str, float]]:
        """(subject, zone, dwell start) of everyone currently placed in a zone."""
        return [(s, st.zone, st.since) for s, st in self.states.items() if st.zone is not None]

    def expire(self, now: float) -> list[tuple[str, Presence]]:
        """Forget subjects unseen for a whole visit gap (privacy: location state expires);
        return them, so the engine can remember when their visit was."""
        gap = self.settings.visit_gap_s
        doomed = [(s, st) for s, st in self.states.items() if now - st.seen >= gap]
        for s, _ in doomed:
            del self.states[s]
        return doomed

    def forget(self, subject: str) -> bool:
        return self.states.pop(subject, None) is not None

    def __len__(self) -> int:
        return len(self.states)
