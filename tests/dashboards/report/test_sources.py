"""Reading a replay's files: decisions, offers, POS lines; bad lines are counted, not fatal."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from floorwalker.dashboards.report.sources import from_files
from floorwalker.devices.registry import Registry
from floorwalker.engine.core.testing import T0
from floorwalker.errors import ConfigError
from floorwalker.rules.model import RuleSet
from tests.engine.conftest import STORE, write_rules

RULE = """\
id: deal
when:
  pos_item: {category: snack}
offer: {id: deal-offer, message: Deal, expires: 1h, cost: 2}
limits:
  holdout: 20%
"""


def _lines(path: Path, *docs: object) -> Path:
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs) + b"not json\n")
    return path


def _pos(terminal: str, line: str, ts: float, **fields: object) -> dict[str, object]:
    payload = {"id": line, "ts": ts, "receipt": "R1", **fields}
    return {"topic": f"fw/s001/pos/{terminal}", "payload": payload}


def test_files_are_read_and_bad_lines_counted(tmp_path: Path) -> None:
    rules: RuleSet = write_rules(tmp_path / "rules", {"deal": RULE})
    registries = {"s001": Registry.from_mapping(STORE)}
    decision = {
        "ts": T0, "store": "s001", "rule": "deal", "kind": "offer", "subject": "s1",
        "outcome": "sent", "reason": "sent", "action_id": "of-1", "candidate": "c-1",
    }  # fmt: skip
    never = {**decision, "ts": None, "outcome": "never_triggered", "rule": "other"}
    offer = {"id": "of-1", "ts": T0, "rule": "deal", "offer": "deal-offer", "code": "AB-1",
             "message": "m", "expires": T0 + 3600, "ts_local": "..."}  # fmt: skip
    decisions = _lines(tmp_path / "d.jsonl", decision, never, [1, 2])
    actions = _lines(
        tmp_path / "a.jsonl",
        {"at": T0, "topic": "fw/s001/shopper/s1/offer", "payload": offer},
        {"at": T0, "topic": "fw/s001/deadletter", "payload": {"reason": "x"}},
    )
    capture = _lines(
        tmp_path / "c.jsonl",
        {"topic": "fw/s001/beacon/gw-1", "payload": []},
        _pos("pos-1", "p1", T0 + 5, sku="x", category="snack", shopper="s1"),
        _pos("pos-1", "p2", T0 + 6, coupon="AB-1"),
        _pos("pos-1", "p3", T0 + 7, checkout=True, total=12.5),
        _pos("pos-9", "p4", T0 + 8, checkout=True, total=1),  # no such terminal
    )
    data = from_files(rules, registries, decisions=decisions, actions=actions, capture=capture)
    assert [(d.rule, d.candidate) for d in data.decisions] == [("deal", "c-1")]
    assert [(o.shopper, o.code, o.expires) for o in data.offers] == [("s1", "AB-1", T0 + 3600)]
    assert [(r.code, r.receipt) for r in data.redemptions] == [("AB-1", "R1")]
    # The checkout's shopper comes from an earlier line of its receipt.
    assert [(c.receipt, c.shopper, c.total) for c in data.checkouts] == [("R1", "s1", 12.5)]
    assert data.skipped == {
        "d.jsonl: not JSON": 1,
        "d.jsonl: not an object": 1,
        "a.jsonl: not JSON": 1,
        "capture: unknown_device": 1,
    }
    assert data.rules[0].holdout == 0.2 and data.rules[0].costs == {"deal-offer": 2.0}
    with pytest.raises(ConfigError, match="file not found"):
        from_files(rules, registries, decisions=tmp_path / "x", actions=actions, capture=capture)
