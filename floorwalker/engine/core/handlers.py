"""One handler per device event kind (sightings have their own path in the store)."""

from __future__ import annotations

from collections.abc import Callable

from floorwalker.devices.events import (
    BellPress,
    Checkout,
    CouponRedeemed,
    DeviceStatus,
    Event,
    PosItem,
    StaffAck,
)
from floorwalker.engine.core.context import Context
from floorwalker.engine.core.decide import Decider
from floorwalker.engine.core.index import EMPTY
from floorwalker.engine.core.ports import Ports
from floorwalker.engine.core.state import StoreState
from floorwalker.engine.core.triggers import Triggers

Handler = Callable[[Event], str | None]


class EventHandlers:
    __slots__ = ("decider", "ports", "st", "triggers")

    def __init__(self, st: StoreState, triggers: Triggers, decider: Decider, ports: Ports) -> None:
        self.st = st
        self.triggers = triggers
        self.decider = decider
        self.ports = ports

    def table(self) -> dict[type, Handler]:
        return {
            BellPress: self.on_bell,  # type: ignore[dict-item]
            PosItem: self.on_pos_item,  # type: ignore[dict-item]
            Checkout: self.on_checkout,  # type: ignore[dict-item]
            CouponRedeemed: self.on_coupon,  # type: ignore[dict-item]
            StaffAck: self.on_ack,  # type: ignore[dict-item]
            DeviceStatus: self.on_status,  # type: ignore[dict-item]
        }

    def on_bell(self, ev: BellPress) -> None:
        index = self.st.index
        ctx = Context("bell", ev.store, ev.ts, f"bell:{ev.bell}:{ev.id}")
        ctx.bell, ctx.zone, ctx.shopper, ctx.reason = ev.bell, ev.zone, ev.shopper, ev.reason
        listeners = index.bell.get(ev.reason, EMPTY) if ev.reason else EMPTY
        self.triggers.dispatch(listeners + index.bell.get(None, EMPTY), ctx)

    def on_pos_item(self, ev: PosItem) -> None:
        ctx = Context("pos_item", ev.store, ev.ts, f"pos:{ev.terminal}:{ev.id}")
        ctx.device = ev.terminal  # where it happened: the alert zone of a POS trigger
        ctx.shopper, ctx.receipt, ctx.category, ctx.sku = (
            ev.shopper,
            ev.receipt,
            ev.category,
            ev.sku,
        )
        ctx.qty, ctx.price = ev.qty, ev.price
        if ev.shopper is not None:
            ctx.zone = self.st.presence.zone_of(ev.shopper, ev.ts)
        index = self.st.index
        listeners = index.pos_any
        if ev.category is not None:
            listeners = index.pos_category.get(ev.category, EMPTY) + listeners
        if ev.sku is not None:
            listeners = index.pos_sku.get(ev.sku, EMPTY) + listeners
        self.triggers.dispatch(listeners, ctx)

    def on_checkout(self, ev: Checkout) -> None:
        ctx = Context("checkout", ev.store, ev.ts, f"pos:{ev.terminal}:{ev.id}")
        ctx.device = ev.terminal  # where it happened: the alert zone of a POS trigger
        ctx.shopper, ctx.receipt, ctx.total = ev.shopper, ev.receipt, ev.total
        self.triggers.dispatch(self.st.index.checkout, ctx)

    def on_coupon(self, ev: CouponRedeemed) -> None:
        ctx = Context("coupon_redeemed", ev.store, ev.ts, f"pos:{ev.terminal}:{ev.id}")
        ctx.device = ev.terminal  # where it happened: the alert zone of a POS trigger
        ctx.shopper, ctx.receipt = ev.shopper, ev.receipt
        record, refused = self.decider.redeem(ev.code, ev.ts)
        if record is not None and refused is None:
            ctx.offer = record.offer
            ctx.shopper = ev.shopper or record.shopper
        coupon = self.st.index.coupon
        listeners = coupon.get(ctx.offer, EMPTY) if ctx.offer else EMPTY
        self.triggers.dispatch(listeners + coupon.get(None, EMPTY), ctx)

    def on_ack(self, ev: StaffAck) -> str | None:
        alert = self.st.alerts.alerts.get(ev.alert)
        if alert is None:
            # Held events (lateness > 0) are decided later: then only counted.
            self.ports.stats.rejected["unknown_alert"] += 1
            return "unknown_alert"
        self.decider.pager.answer(alert, ev)
        ctx = Context("staff_ack", ev.store, ev.ts, f"ack:{ev.band}:{ev.id}")
        ctx.alert, ctx.action, ctx.zone = ev.alert, ev.action, alert.zone
        ctx.bell, ctx.shopper = alert.bell, alert.shopper
        ack = self.st.index.ack
        self.triggers.dispatch(ack.get(ev.action, EMPTY) + ack.get(None, EMPTY), ctx)
        return None

    def on_status(self, ev: DeviceStatus) -> None:
        st = self.st
        st.devices[ev.device] = (ev.online, ev.ts, ev.battery)
        if ev.device in st.registry.staff:
            st.staff.set_online(ev.device, ev.online)
