"""Open alerts taken back from the durable journal after a restart.

The journal (Redis when live) is written through on every alert change, before
the page it decided is published, so after a restart it is at least as new as
any store snapshot: a journal record replaces the alert a snapshot brought
back, and escalation steps not yet sent are re-armed at their original times.
Re-arming a step a restored timer queue already holds is harmless: a step runs
once (:meth:`~floorwalker.engine.core.decide.Decider.escalate` skips a step
already taken).
"""

from __future__ import annotations

from typing import Any

from floorwalker.engine.core.alerts import OpenAlert
from floorwalker.engine.core.health import alert_spec
from floorwalker.engine.core.ports import Schedule
from floorwalker.engine.core.state import StoreState


def restore_alert(st: StoreState, schedule: Schedule, rec: dict[str, Any]) -> bool:
    """Take one journal record back into the store; False if it no longer applies."""
    spec = alert_spec(st, str(rec.get("rule")))
    if spec is None:
        return False
    alert = OpenAlert.from_record(dict(rec), spec)
    known = st.alerts.alerts.get(alert.id)
    if known is not None:
        _release(st, known)
    st.alerts.add(alert)
    if alert.answered:
        st.alerts.answered(alert)
        if alert.closed_at is None and alert.acked_by is not None:
            st.staff.busy[alert.acked_by] = alert.id
        return True
    for band in alert.bands:
        st.staff.busy[band] = alert.id
    if known is None:  # a snapshot that held the alert also holds its escalation timers
        for k in range(alert.step - 1, len(spec.escalate)):
            schedule(alert.created + spec.escalate[k].after_s, "escalate", (st.store, alert.id, k))
    return True


def _release(st: StoreState, alert: OpenAlert) -> None:
    """Undo what the older copy of an alert held: its bands and its open-by-source key."""
    st.alerts.answered(alert)
    for band, held in list(st.staff.busy.items()):
        if held == alert.id:
            del st.staff.busy[band]
