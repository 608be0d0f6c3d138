"""Device health: a built-in rule that pages the manager about silent or offline devices."""

from __future__ import annotations

from floorwalker.engine.core.context import Context
from floorwalker.engine.core.decide import Decider
from floorwalker.engine.core.state import StoreState
from floorwalker.rules.model import AlertSpec, ByRole, Pattern, Rule, Single, SourceRef

#: Built in, not in any rule file: a silent gateway or an offline device pages the manager.
DEVICE_HEALTH_RULE = Rule(
    id="device-health",
    when=Single(Pattern("visit_start")),  # never dispatched: the store raises it itself
    actions=(
        AlertSpec(
            to=(ByRole("manager"),),
            message="Device {device} is {reason} - please check it.",
            priority="high",
            include_shopper=False,
        ),
    ),
    source=SourceRef("<built-in>", 1),
    description="A gateway silent, or a device offline, for longer than device_silence_s.",
)


def check_health(st: StoreState, decider: Decider, now: float, limit: float) -> None:
    """Page about every device newly silent or offline past ``limit``; clear the recovered."""
    for device, since, why in st.health_problems(now, limit):
        if device in st.unhealthy:
            continue
        st.unhealthy[device] = since
        ctx = Context("device_health", st.store, now, f"health:{device}:{since!r}")
        ctx.device, ctx.reason = device, why
        ctx.zone = st.registry.bells.get(device) or st.registry.beacons.get(device)
        decider.pager.raise_builtin(DEVICE_HEALTH_RULE, ctx)
    st.recover(now, limit)


def alert_spec(st: StoreState, rule_id: str) -> AlertSpec | None:
    """The alert spec of a rule by id, the built-in one included (for restored alerts)."""
    rule = (
        DEVICE_HEALTH_RULE if rule_id == DEVICE_HEALTH_RULE.id else st.compiled.rules.get(rule_id)
    )
    if rule is None:
        return None
    return next((a for a in rule.actions if isinstance(a, AlertSpec)), None)
