"""Synthetic rule catalogs for benchmarks: many distinct, valid, realistic-looking rules.

Two flavours, both written as rule files a marketer could have authored (so
that loading them exercises the real parser and validator):

* ``disjoint`` — rules the demo traffic can never trigger, and that a good
  index must therefore skip at no cost: POS promotions on categories and
  EAN-13 SKUs the stores never sell, presence rules on zone tags the stores do
  not have, bell rules on reasons nobody presses, follow-ups on coupons never
  issued, and composites built from those. No ``visit_start``, ``checkout`` or
  any-item rules: those have no key an index could file them under.
* ``realistic`` — a chain's accumulated catalog, in the proportions such a
  catalog might have: mostly POS cross-sells (on categories the traffic sells
  and on others), dwell and enter rules on the tags the stores do have, some
  visit-start, bell, checkout-total and composite rules. Many are scoped to
  campaigns, half of which are not running on the demo date, as catalogs
  accumulate expired and future campaigns. These rules do match the traffic.

Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

Flavour = Literal["disjoint", "realistic"]

ABSENT_TAGS: tuple[str, ...] = (
    "fitting-room",
    "toys",
    "garden-center",
    "pet-care",
    "optical",
    "jewelry",
    "wine-cellar",
    "books",
    "sporting-goods",
    "hardware",
    "luggage",
    "photo-lab",
    "florist",
    "tailoring",
    "gaming",
    "tyre-center",
)
"""Zone tags the demo store does not have."""
NEW_TAGS: tuple[str, ...] = tuple(t for t in ABSENT_TAGS if t not in ("fitting-room", "toys"))
"""Those of them outside the built-in vocabulary (declared in vocabulary.yaml)."""

ABSENT_CATEGORIES: tuple[str, ...] = (
    "pet-food", "cat-litter", "garden-tools", "motor-oil", "stationery", "printer-ink",
    "wine", "spirits", "batteries", "light-bulbs", "kitchenware", "bedding", "towels",
    "socks", "umbrellas", "sunscreen", "toothpaste", "shampoo", "razors", "greeting-cards",
    "magazines", "board-games", "video-games", "headphones", "phone-cases", "charcoal",
    "flowers", "seeds", "paint", "party-supplies", "candles", "picture-frames", "yarn",
    "camping-gear", "bicycle-parts", "aquarium", "fishing", "school-bags", "watches", "perfume",
)  # fmt: skip
"""POS categories the demo traffic never sells."""
ABSENT_REASONS: tuple[str, ...] = (
    "price-check", "carry-out", "wheelchair-assist", "lost-child", "spill",
    "locked-cabinet", "key-cutting", "order-pickup", "gift-wrap", "fitting-room",
)  # fmt: skip
"""Bell reasons the demo traffic never sends."""

STORE_TAGS: tuple[str, ...] = (
    "entrance", "coffee-bar", "bakery", "deli", "chilled", "produce", "dairy", "frozen",
    "beverages", "pantry", "baby", "pharmacy", "cosmetics-testers", "high-consideration",
    "electronics", "checkout",
)  # fmt: skip
"""The demo store's zone tags."""
TRAFFIC_CATEGORIES: tuple[str, ...] = (
    "yogurt", "milk", "cheese", "deli-meat", "salad", "coffee", "pastry", "bread", "fruit",
    "vegetables", "ice-cream", "frozen-meals", "soft-drinks", "water", "juice", "pasta",
    "rice", "snacks", "canned-goods", "infant-formula", "diapers", "baby-food", "vitamins",
    "otc-medicine", "cosmetics", "skincare", "small-appliances", "furniture", "home-decor",
)  # fmt: skip
"""POS categories the demo traffic sells (see traffic.CATEGORIES_BY_TAG)."""
TRAFFIC_REASONS: tuple[str, ...] = ("checkout", "help", "complaint")

DEMO_DAY = date(2026, 11, 23)
DWELL_THRESHOLDS_S: tuple[int, ...] = (5, 10, 15, 20, 30, 45, 60, 90, 120)
PERIODS: tuple[str, ...] = ("day", "week", "visit", "month")
TIERS: tuple[str, ...] = ("member", "silver", "gold", "vip")
SEGMENTS: tuple[str, ...] = ("loyal", "growing", "dormant", "regular")

Rule = dict[str, Any]


class _Maker:
    def __init__(self, seed: int, flavour: Flavour) -> None:
        self.rng = np.random.default_rng(seed)
        self.flavour = flavour
        self.n = 0

    # -- small random helpers ----------------------------------------------------

    def pick(self, items: Sequence[Any]) -> Any:
        return items[int(self.rng.integers(len(items)))]

    def some(self, items: Sequence[Any], most: int = 3) -> list[Any]:
        k = 1 + int(self.rng.integers(min(most, len(items))))
        idx = self.rng.choice(len(items), size=k, replace=False)
        return [items[int(i)] for i in sorted(idx)]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def rule_id(self, kind: str) -> str:
        self.n += 1
        return f"x{self.n:04d}-{kind}"

    # -- pieces ---------------------------------------------------------------------

    def campaign(self, running_share: float) -> dict[str, str]:
        if self.chance(running_share):
            start = DEMO_DAY - timedelta(days=int(self.rng.integers(1, 60)))
            end = DEMO_DAY + timedelta(days=int(self.rng.integers(1, 60)))
        elif self.chance(0.5):
            end = DEMO_DAY - timedelta(days=int(self.rng.integers(1, 300)))
            start = end - timedelta(days=int(self.rng.integers(7, 60)))
        else:
            start = DEMO_DAY + timedelta(days=int(self.rng.integers(1, 120)))
            end = start + timedelta(days=int(self.rng.integers(7, 60)))
        return {"start": start.isoformat(), "end": end.isoformat()}

    def conditions(self, campaign_share: float) -> dict[str, Any]:
        cond: dict[str, Any] = {}
        if self.chance(campaign_share):
            cond["campaign"] = self.campaign(0.5)
        if self.chance(0.3):
            cond["tier"] = self.some(TIERS, 3)
        if self.chance(0.15):
            cond["segment"] = self.some(SEGMENTS, 2)
        if self.chance(0.15):
            start = int(self.rng.integers(7, 20))
            length = int(self.rng.integers(1, 5))
            cond["daypart"] = {"from": f"{start:02d}:00", "to": f"{min(start + length, 23):02d}:30"}
        if self.chance(0.1):
            cond["days"] = self.some(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), 4)
        return cond

    def limits(self) -> dict[str, Any]:
        limits: dict[str, Any] = {
            "per_shopper": [{"count": 1 + int(self.rng.integers(2)), "per": self.pick(PERIODS)}]
        }
        if self.chance(0.2):
            limits["budget"] = {"coupons": int(self.rng.integers(100, 5000))}
        if self.chance(0.15):
            limits["cooldown"] = f"{int(self.rng.integers(1, 12))}h"
        if self.chance(0.1):
            limits["holdout"] = "10%"
        return limits

    def offer(self, rule_id: str, what: str) -> dict[str, Any]:
        pct = int(self.pick((5, 10, 15, 20, 25, 30)))
        return {
            "id": f"{rule_id}-o",
            "message": f"{pct}% off {what} today - show this at the till.",
            "expires": self.pick(("2h", "1d", "7d", "14d")),
            "cost": round(float(self.rng.uniform(0.5, 20.0)), 2),
        }

    def alert(self, message: str) -> dict[str, Any]:
        to: Any = self.pick(("nearest", {"role": "associate"}, {"role": "manager"}))
        return {"to": to, "priority": self.pick(("normal", "high")), "message": message}

    def rule(self, kind: str, when: dict[str, Any], what: str, *, alert_share: float = 0.0) -> Rule:
        rule_id = self.rule_id(kind)
        out: Rule = {
            "id": rule_id,
            "description": f"Synthetic {self.flavour} {kind} rule about {what}.",
            "priority": int(self.rng.integers(0, 100)),
            "when": when,
        }
        cond = self.conditions(0.6 if self.flavour == "realistic" else 0.4)
        if cond:
            out["if"] = cond
        if self.chance(alert_share):
            out["alert"] = self.alert(f"A customer may need help with {what} in {{zone}}.")
        else:
            out["offer"] = self.offer(rule_id, what)
            out["limits"] = self.limits()
        return out


# --------------------------------------------------------------------------- rule kinds


def _pos_category(m: _Maker, cats: Sequence[str]) -> Rule:
    cat = m.pick(cats)
    return m.rule(
        "pos-cat", {"pos_item": {"category": m.some(cats, 2) if m.chance(0.2) else cat}}, cat
    )


def _pos_sku(m: _Maker, cats: Sequence[str], ean: bool) -> Rule:
    if ean:
        skus = [
            f"69{int(m.rng.integers(10**10, 10**11))}" for _ in range(1 + int(m.rng.integers(3)))
        ]
    else:
        cat = m.pick(cats)
        skus = [f"{cat}-{int(m.rng.integers(25)):03d}" for _ in range(1 + int(m.rng.integers(3)))]
    return m.rule("pos-sku", {"pos_item": {"sku": sorted(set(skus))}}, "this product")


def _zone(m: _Maker, tags: Sequence[str], alert_share: float) -> Rule:
    tag = m.pick(tags)
    roll = m.rng.random()
    if roll < 0.65:
        at = int(m.pick(DWELL_THRESHOLDS_S))
        when: dict[str, Any] = {"dwell": {"zone_tag": tag, "at_least": f"{at}s"}}
        kind = "dwell"
    elif roll < 0.9:
        when, kind = {"enter": {"zone_tag": tag}}, "enter"
    else:
        when, kind = {"leave": {"zone_tag": tag}}, "leave"
    return m.rule(kind, when, f"the {tag} area", alert_share=alert_share)


def _bell(m: _Maker, reasons: Sequence[str]) -> Rule:
    rule = m.rule("bell", {"bell": {"reason": m.some(reasons, 2)}}, "a bell", alert_share=1.0)
    rule.pop("if", None)
    return rule


def _coupon(m: _Maker, offers: Sequence[str]) -> Rule:
    return m.rule("coupon", {"coupon_redeemed": {"offer": m.pick(offers)}}, "your next visit")


def _visit(m: _Maker) -> Rule:
    rule = m.rule("visit", {"visit_start": {}}, "your visit")
    cond = rule.setdefault("if", {})
    roll = m.rng.random()
    if roll < 0.3:
        cond["birthday_within_days"] = int(m.pick((3, 7)))
    elif roll < 0.5:
        cond["days_since_last_visit"] = {"at_least": int(m.pick((30, 60, 90, 180)))}
    elif roll < 0.7:
        cond["lifetime_value"] = {"at_least": int(m.pick((1000, 2000, 5000)))}
    else:
        cond.setdefault("tier", m.some(TIERS, 2))
    return rule


def _checkout(m: _Maker) -> Rule:
    total = int(m.pick((100, 200, 300, 500, 800, 1000)))
    return m.rule("spend", {"checkout": {"min_total": total}}, f"spending {total}")


def _composite(m: _Maker, tags: Sequence[str], cats: Sequence[str], reasons: Sequence[str]) -> Rule:
    roll = m.rng.random()
    tag, cat = m.pick(tags), m.pick(cats)
    if roll < 0.4:
        at = int(m.pick(DWELL_THRESHOLDS_S))
        when: dict[str, Any] = {
            "absence": {
                "after": {"dwell": {"zone_tag": tag, "at_least": f"{at}s"}},
                "missing": {"pos_item": {"category": cat}},
                "within": m.pick(("10m", "15m", "30m")),
            }
        }
        return m.rule("absence", when, cat)
    if roll < 0.75:
        when = {
            "sequence": {
                "first": {"pos_item": {"category": cat}},
                "then": {"pos_item": {"category": m.pick(cats)}},
                "within": "30m",
                "by": "receipt",
            }
        }
        return m.rule("sequence", when, cat)
    when = {
        "count": {
            "of": {"bell": {"reason": m.pick(reasons)}},
            "at_least": int(m.pick((2, 3, 4))),
            "within": "5m",
            "by": "bell",
        }
    }
    rule = m.rule("count", when, "a bell", alert_share=1.0)
    rule.pop("if", None)
    return rule


def synthetic_rules(count: int, flavour: Flavour = "disjoint", seed: int = 11) -> list[Rule]:
    """``count`` distinct rule files (as mappings), deterministic for (count, flavour, seed)."""
    m = _Maker(seed, flavour)
    if flavour == "disjoint":
        mix: list[tuple[float, Callable[[], Rule]]] = [
            (0.40, lambda: _pos_category(m, ABSENT_CATEGORIES)),
            (0.15, lambda: _pos_sku(m, ABSENT_CATEGORIES, ean=True)),
            (0.20, lambda: _zone(m, ABSENT_TAGS, 0.2)),
            (0.10, lambda: _bell(m, ABSENT_REASONS)),
            (0.05, lambda: _coupon(m, [f"promo-{i:04d}" for i in range(500)])),
            (0.10, lambda: _composite(m, ABSENT_TAGS, ABSENT_CATEGORIES, ABSENT_REASONS)),
        ]
    else:
        cats = TRAFFIC_CATEGORIES + ABSENT_CATEGORIES[:20]
        offers = [f"x{i:04d}-pos-cat-o" for i in range(1, count + 1)] + ["yogurt-bogo"]
        mix = [
            (0.35, lambda: _pos_category(m, cats)),
            (0.10, lambda: _pos_sku(m, TRAFFIC_CATEGORIES, ean=m.chance(0.5))),
            (0.20, lambda: _zone(m, STORE_TAGS, 0.1)),
            (0.08, lambda: _zone(m, ("entrance", "bakery", "produce", "coffee-bar"), 0.1)),
            (0.08, lambda: _visit(m)),
            (0.04, lambda: _bell(m, TRAFFIC_REASONS + ABSENT_REASONS[:3])),
            (0.03, lambda: _checkout(m)),
            (0.05, lambda: _composite(m, STORE_TAGS, cats, TRAFFIC_REASONS)),
            (0.07, lambda: _coupon(m, offers)),
        ]
    weights = np.array([w for w, _ in mix], dtype=np.float64)
    kinds = m.rng.choice(len(mix), size=count, p=weights / weights.sum())
    return [mix[int(k)][1]() for k in kinds]


def write_rules_dir(
    directory: str | Path,
    rules: Iterable[Rule],
    *,
    catalog: str | Path | None = None,
    zone_tags: Iterable[str] = NEW_TAGS + STORE_TAGS,
) -> int:
    """Write rule files (plus the catalog's files and a vocabulary) into ``directory``.

    Returns the number of rule files. The vocabulary declares ``zone_tags`` on top
    of the catalog's own ``vocabulary.yaml``, if it has one.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    if catalog is not None:
        for src in sorted(Path(catalog).glob("*.yaml")):
            (out / src.name).write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
            n += src.stem not in ("policy", "vocabulary")
    tags, roles = set(zone_tags), set[str]()
    known = out / "vocabulary.yaml"
    if known.exists():
        declared = yaml.safe_load(known.read_text(encoding="utf-8")) or {}
        tags.update(declared.get("zone_tags") or ())
        roles.update(declared.get("roles") or ())
    vocabulary = {"zone_tags": sorted(tags), "roles": sorted(roles)}
    (out / "vocabulary.yaml").write_text(yaml.safe_dump(vocabulary), encoding="utf-8")
    for rule in rules:
        text = yaml.safe_dump(rule, sort_keys=False, allow_unicode=True)
        (out / f"{rule['id']}.yaml").write_text(text, encoding="utf-8")
        n += 1
    return n
