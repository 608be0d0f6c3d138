"""The core's settings: one frozen value, shared read-only by every store unit."""

from __future__ import annotations

from dataclasses import dataclass, field

from floorwalker.engine.core.presence import PresenceSettings


@dataclass(frozen=True)
class EngineSettings:
    presence: PresenceSettings = field(default_factory=PresenceSettings)
    staff_presence: PresenceSettings = field(
        default_factory=lambda: PresenceSettings(visit_gap_s=12 * 3600.0)
    )
    lateness_s: float = 0.0
    """Reorder window: hold events this long and process them in timestamp order."""
    max_late_s: float = 60.0
    max_future_s: float = 30.0
    dedup_ttl_s: float = 86400.0
    location_ttl_s: float = 86400.0
    """Location-derived state (visit history) is forgotten after this (privacy)."""
    alert_keep_s: float = 3600.0
    unanswered_after_s: float = 60.0
    """An alert nobody answered this long after its last escalation step is unanswered."""
    resend_decided: bool = False
    """An action the guard store already holds under its id (decided before a crash, maybe
    never sent) is sent again rather than refused as a duplicate: for transports that
    deduplicate by action id (the cluster's bridge), so a decision is never lost."""
    busy_timeout_s: float = 900.0
    """A band on an acknowledged alert counts as busy until done, or this long after the ack."""
    sweep_every_s: float = 60.0
    device_silence_s: float = 300.0
    """A gateway silent, or any device reporting offline, this long pages the manager."""
    health_every_s: float = 15.0
