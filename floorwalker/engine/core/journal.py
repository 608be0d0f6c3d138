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


def restore_alert(
    st: StoreState, schedule: Schedule, rec: dict[str, Any], end_after: float
) -> bool:
    """Take one journal record back into the store; False if it no longer applies.

    ``end_after`` is ``unanswered_after_s``: an open alert's chain ends that long
    after its last step.
    """
    spec = alert_spec(st, str(rec.get("rule")))
    if spec is None:
        return False
    alert = OpenAlert.from_record(dict(rec), spec)
    known = st.alerts.alerts.get(alert.id)
    if known is not None:
        st.alerts.answered(known)  # its open-by-source key; the record says what holds now
    st.alerts.add(alert)
    if alert.answered or alert.ended_at is not None:
        st.alerts.answered(alert)
        return True
    if known is None:  # a snapshot that held the alert also holds its timers
        for k in range(alert.step - 1, len(spec.escalate)):
            schedule(alert.created + spec.escalate[k].after_s, "escalate", (st.store, alert.id, k))
        last = spec.escalate[-1].after_s if spec.escalate else 0.0
        schedule(alert.created + last + end_after, "unanswered", (st.store, alert.id))
    return True
