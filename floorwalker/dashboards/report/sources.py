"""Where a report's records come from: a replay's files, or a live runner's record in Redis.

From files (``floorwalker report --decisions F --actions F --capture F``):

* the decisions file replay's ``--decisions`` wrote (``never_triggered`` lines
  are not decisions and are skipped);
* the actions replay wrote to stdout: the offers (dead letters and alerts are
  skipped; alerts are in the decisions);
* the capture it replayed: its POS lines, decoded by the wire decoder with the
  registries (sightings are not even parsed). A checkout's shopper is its
  loyalty scan or that of an earlier line of its receipt, as the POS history
  records it.

From Redis (``--redis URL``): the streams the edge runner records
(:mod:`floorwalker.engine.stores.redis_record`) and its loyalty checkouts
(:mod:`floorwalker.engine.stores.pos_history`), from ``since`` on, duplicates
(retried writes) dropped.

A line that cannot be read is skipped and counted in :attr:`ReportInput.skipped`
(by file and reason), never fatal; a missing file is a :class:`ConfigError`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from floorwalker.dashboards.report.records import (
    CheckoutRec,
    OfferRec,
    RedemptionRec,
    ReportInput,
    decision_from_json,
    rule_infos,
)
from floorwalker.devices.decode import Decoder, DecoderSettings
from floorwalker.devices.events import Checkout, CouponRedeemed, PosItem, Rejection
from floorwalker.devices.registry import Registry
from floorwalker.devices.topics import OutboundKind, parse_outbound
from floorwalker.engine.core.guards import BudgetState, budget_key
from floorwalker.errors import ConfigError
from floorwalker.rules.model import RuleSet


def from_files(
    ruleset: RuleSet,
    registries: Mapping[str, Registry],
    *,
    decisions: Path,
    actions: Path,
    capture: Path,
    prefix: str = "fw",
) -> ReportInput:
    """A report's input from a replay: its decisions file, its actions and the capture."""
    skipped: Counter[str] = Counter()
    data = ReportInput(
        rule_infos(ruleset),
        {store: reg.tzinfo for store, reg in registries.items()},
        source=f"replay: {decisions.name}, {actions.name}, {capture.name}",
    )
    for doc in _jsonl(decisions, skipped):
        rec = decision_from_json(doc)
        if rec is not None:
            data.decisions.append(rec)
        elif doc.get("outcome") != "never_triggered":
            skipped[f"{decisions.name}: not a decision"] += 1
    for doc in _jsonl(actions, skipped):
        offer = _offer(doc.get("topic"), doc.get("payload"), prefix)
        if offer is not None:
            data.offers.append(offer)
    _pos_lines(data, _capture_pos(capture, skipped), registries, prefix, skipped)
    data.skipped = dict(skipped)
    return data


def _jsonl(
    path: Path, skipped: Counter[str], marker: bytes | None = None
) -> Iterator[dict[str, Any]]:
    """The objects of a JSON Lines file; with ``marker``, only of lines containing it
    (the rest is not even parsed)."""
    if not path.is_file():
        raise ConfigError("file not found", file=str(path))
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip() or (marker is not None and marker not in line):
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                skipped[f"{path.name}: not JSON"] += 1
                continue
            if isinstance(doc, dict):
                yield doc
            else:
                skipped[f"{path.name}: not an object"] += 1


def _offer(topic: object, payload: object, prefix: str) -> OfferRec | None:
    """An offer action of replay's output (its store and shopper are in the topic)."""
    where = parse_outbound(topic, prefix)
    if where is None or where.kind != OutboundKind.OFFER or not isinstance(payload, dict):
        return None
    return _offer_doc({**payload, "store": where.store, "shopper": where.target})


def _capture_pos(path: Path, skipped: Counter[str]) -> Iterator[tuple[str, bytes]]:
    """(topic, payload) of the capture's POS lines; everything else is passed over."""
    for doc in _jsonl(path, skipped, marker=b"/pos/"):
        topic, payload = doc.get("topic"), doc.get("payload")
        if isinstance(topic, str) and "/pos/" in topic and payload is not None:
            yield topic, orjson.dumps(payload)


def _pos_lines(
    data: ReportInput,
    lines: Iterable[tuple[str, bytes]],
    registries: Mapping[str, Registry],
    prefix: str,
    skipped: Counter[str],
) -> None:
    """Decode POS lines into redemptions and checkouts (shoppers resolved by receipt)."""
    decoder = Decoder(registries, DecoderSettings(prefix=prefix))
    owner: dict[tuple[str, str], str] = {}
    for topic, payload in lines:
        for item in decoder.decode(topic, payload, 0.0):
            if isinstance(item, Rejection):
                skipped[f"capture: {item.reason}"] += 1
            elif isinstance(item, PosItem):
                if item.shopper:
                    owner[(item.store, item.receipt)] = item.shopper
            elif isinstance(item, CouponRedeemed):
                if item.shopper:
                    owner[(item.store, item.receipt)] = item.shopper
                data.redemptions.append(
                    RedemptionRec(item.ts, item.store, item.receipt, item.code, item.shopper)
                )
            elif isinstance(item, Checkout):
                shopper = item.shopper or owner.pop((item.store, item.receipt), None)
                total = item.total if item.total is not None else 0.0
                data.checkouts.append(
                    CheckoutRec(item.ts, item.store, item.receipt, shopper, total)
                )


def from_redis(
    url: str,
    ruleset: RuleSet,
    registries: Mapping[str, Registry],
    *,
    prefix: str = "fw:",
    since: float = 0.0,
) -> ReportInput:
    """A report's input from a live runner's record in Redis, written since ``since``;
    budgets as the shared guard store has them now (:attr:`ReportInput.budgets`)."""
    from floorwalker.engine.stores._redis import connect  # noqa: PLC0415
    from floorwalker.engine.stores.pos_history import (  # noqa: PLC0415
        PosHistorySettings,
        iter_checkout_entries,
    )
    from floorwalker.engine.stores.redis_record import (  # noqa: PLC0415
        RecordSettings,
        read_records,
    )

    settings = RecordSettings(prefix=prefix)
    data = ReportInput(
        rule_infos(ruleset),
        {store: reg.tzinfo for store, reg in registries.items()},
        source=f"live record in Redis ({prefix}record:*)",
    )
    client = connect(url, socket_timeout_s=30.0, connect_timeout_s=2.0)
    try:
        data.decisions = _unique(
            (
                decision_from_json(d)
                for d in read_records(client, "decisions", settings, since=since)
            ),
            key=lambda d: (d.candidate, d.action_id, d.reason, d.ts),
        )
        data.offers = _unique(
            (_offer_doc(d) for d in read_records(client, "offers", settings, since=since)),
            key=lambda o: o.code,
        )
        data.redemptions = _unique(
            (
                _redemption_doc(d)
                for d in read_records(client, "redemptions", settings, since=since)
            ),
            key=lambda r: (r.store, r.receipt, r.code),
        )
        pos = PosHistorySettings(prefix=prefix)
        data.checkouts = _unique(
            (_checkout_fields(f) for _, f in iter_checkout_entries(client, pos)),
            key=lambda c: (c.store, c.receipt, c.ts),
        )
        data.checkouts = [c for c in data.checkouts if c.ts >= since]
        data.budgets = _budgets(client, ruleset, prefix)
    finally:
        client.close()
    return data


def _budgets(client: Any, ruleset: RuleSet, prefix: str) -> dict[str, BudgetState]:
    """Every budgeted rule's budget now, as the shared guard store has it."""
    import time  # noqa: PLC0415

    from floorwalker.engine.stores.redis_guards import (  # noqa: PLC0415
        RedisGuardSettings,
        RedisGuardStore,
    )

    guards = RedisGuardStore(client, RedisGuardSettings(prefix=f"{prefix}guard:"))
    now = time.time()
    return {
        rule.id: guards.budget(budget_key(rule.id), now)
        for rule in ruleset.rules
        if rule.limits.budget is not None
    }


def _unique(items: Iterable[Any], *, key: Any) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for item in items:
        if item is None:
            continue
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


def _offer_doc(d: dict[str, Any]) -> OfferRec | None:
    try:
        return OfferRec(
            float(d["ts"]),
            str(d["store"]),
            str(d["shopper"]),
            str(d["rule"]),
            str(d["offer"]),
            str(d["code"]),
            float(d["expires"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _redemption_doc(d: dict[str, Any]) -> RedemptionRec | None:
    try:
        shopper = d.get("shopper")
        return RedemptionRec(
            float(d["ts"]),
            str(d["store"]),
            str(d["receipt"]),
            str(d["code"]),
            None if shopper is None else str(shopper),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _checkout_fields(f: Mapping[str, str]) -> CheckoutRec | None:
    try:
        return CheckoutRec(
            float(f["ts"]), f["store"], f["receipt"], f.get("shopper") or None, float(f["total"])
        )
    except (KeyError, ValueError):
        return None
