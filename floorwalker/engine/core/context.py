"""The context of a trigger: what happened, where, to whom.

One :class:`Context` is built per matched signal (only when some rule listens,
so unmatched sightings build nothing). Composites carry the context of the
signal that started them; conditions and message templates read it.
"""

from __future__ import annotations

from typing import Any

from floorwalker.rules.model import KeyName


class Context:
    __slots__ = (
        "action",
        "alert",
        "bell",
        "category",
        "count",
        "device",
        "kind",
        "offer",
        "price",
        "qty",
        "reason",
        "receipt",
        "shopper",
        "sku",
        "source",
        "store",
        "total",
        "ts",
        "zone",
    )

    def __init__(self, kind: str, store: str, ts: float, source: str) -> None:
        self.kind = kind
        self.store = store
        self.ts = ts
        self.source = source
        """What caused it, stable across runs: an event id or a presence moment."""
        self.shopper: str | None = None
        self.zone: str | None = None
        self.bell: str | None = None
        self.receipt: str | None = None
        self.category: str | None = None
        self.sku: str | None = None
        self.reason: str | None = None
        self.offer: str | None = None
        self.action: str | None = None
        self.alert: str | None = None
        self.total: float | None = None
        self.qty: float | None = None
        self.price: float | None = None
        self.count: int | None = None
        self.device: str | None = None

    def key(self, by: KeyName) -> str | None:
        value: str | None = getattr(self, by)
        return value

    def fields(self) -> dict[str, Any]:
        """Template fields for messages (``{zone}``, ``{count}`` ...); None becomes empty."""
        return {name: ("" if (v := getattr(self, name)) is None else v) for name in self.__slots__}

    def copy(self, **changes: Any) -> Context:
        new = Context(self.kind, self.store, self.ts, self.source)
        for name in self.__slots__:
            setattr(new, name, getattr(self, name))
        for name, value in changes.items():
            setattr(new, name, value)
        return new
