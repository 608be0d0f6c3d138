"""The closed loop: shoppers redeem the coupons the engine really sent them, holdouts never.

A small store simulation runs through the catalog (one rule given a holdout);
its capture is then replayed, and every redemption in the capture must be a
code that replay issued, to that shopper, before it expired.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from floorwalker.devices.registry import load_registries
from floorwalker.engine.core.actions import Decision
from floorwalker.engine.core.profiles import ProfileBook
from floorwalker.engine.runners.replay import Capture, Replay, ReplaySettings
from floorwalker.rules.loader import load_rules_for
from floorwalker.simulators.closed_loop import ResponseModel, simulate_closed_loop
from floorwalker.simulators.store import SimulationSettings
from floorwalker.simulators.traffic import DEMO_REGISTRY

CATALOG = Path(__file__).resolve().parents[2] / "floorwalker" / "rules" / "catalog"
HOLDOUT_RULE = "chilled-dwell-bogo"


def rules_with_holdout(directory: Path, share: str = "40%") -> Path:
    """The catalog, with ``chilled-dwell-bogo`` holding ``share`` of shoppers out."""
    shutil.copytree(CATALOG, directory)
    path = directory / f"{HOLDOUT_RULE}.yaml"
    text = path.read_text()
    assert "limits:\n" in text
    path.write_text(text.replace("limits:\n", f"limits:\n  holdout: {share}\n"))
    return directory


def closed_loop(
    tmp: Path, rules: Path, *, seed: int = 11, shoppers: int = 80, minutes: float = 15.0
) -> tuple[Path, Path, dict[str, object]]:
    tmp.mkdir(parents=True, exist_ok=True)
    capture, profiles = tmp / "capture.jsonl", tmp / "profiles.jsonl"
    settings = SimulationSettings(shoppers=shoppers, minutes=minutes, seed=seed)
    summary = simulate_closed_loop(
        DEMO_REGISTRY,
        settings,
        rules,
        capture=capture,
        profiles_out=profiles,
        model=ResponseModel(base_p=0.5),
    )
    return capture, profiles, summary


def replay_capture(
    capture: Path, profiles: Path, rules: Path
) -> tuple[list[dict[str, Any]], list[Decision]]:
    regs = load_registries([DEMO_REGISTRY])
    decisions: list[Decision] = []
    replay = Replay(
        load_rules_for(rules, regs),
        regs,
        ProfileBook.load(profiles),
        ReplaySettings(deadletters=False),
        on_decision=decisions.append,
    )
    actions: list[dict[str, Any]] = []

    def out(at: float, topic: str, payload: object) -> None:
        actions.append({"at": at, "topic": topic, "payload": payload})

    for line in Capture(capture):
        replay.feed(line, out)
    replay.finish(out)
    return actions, decisions


def coupon_lines(capture: Path) -> list[dict[str, Any]]:
    lines = [orjson.loads(raw) for raw in capture.read_bytes().splitlines()]
    return [
        line["payload"]
        for line in lines
        if "/pos/" in line["topic"] and isinstance(line["payload"], dict)
        and "coupon" in line["payload"]
    ]  # fmt: skip


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, dict[str, object]]:
    tmp = tmp_path_factory.mktemp("loop")
    rules = rules_with_holdout(tmp / "rules")
    capture, profiles, summary = closed_loop(tmp / "a", rules)
    return rules, capture, profiles, summary


def test_same_seed_same_capture(
    loop: tuple[Path, Path, Path, dict[str, object]], tmp_path: Path
) -> None:
    rules, capture, _profiles, summary = loop
    again, _, summary_again = closed_loop(tmp_path / "b", rules)
    assert again.read_bytes() == capture.read_bytes()
    assert summary_again == {**summary, "capture": str(again)}
    other, _, _ = closed_loop(tmp_path / "c", rules, seed=12)
    assert other.read_bytes() != capture.read_bytes()


def test_redemptions_use_the_codes_the_engine_issued(
    loop: tuple[Path, Path, Path, dict[str, object]],
) -> None:
    rules, capture, profiles, summary = loop
    actions, _ = replay_capture(capture, profiles, rules)
    offers = {
        a["payload"]["code"]: (a["topic"], a["payload"])
        for a in actions
        if str(a["topic"]).endswith("/offer")
    }
    redeemed = coupon_lines(capture)
    assert len(redeemed) == summary["redemptions"]
    assert len(redeemed) >= 5, "the response model redeemed something"
    assert summary["redeemed_on_planned_checkout"] and summary["redeemed_on_a_trip"]
    codes = [r["coupon"] for r in redeemed]
    assert len(set(codes)) == len(codes), "each coupon redeemed once"
    for line in redeemed:
        topic, offer = offers[line["coupon"]]  # a code the engine issued...
        assert topic.split("/")[3] == line["shopper"]  # ...to this very shopper...
        assert offer["ts"] < line["ts"] <= offer["expires"]  # ...and still valid
    # The trips' checkouts are in the capture too, and the replay counts every redemption.
    assert summary["offers"] == len(offers)


def test_holdout_shoppers_never_get_nor_redeem_the_rules_coupon(
    loop: tuple[Path, Path, Path, dict[str, object]],
) -> None:
    rules, capture, profiles, _ = loop
    actions, decisions = replay_capture(capture, profiles, rules)
    held = {d.subject for d in decisions if d.rule == HOLDOUT_RULE and d.reason == "holdout"}
    treated = {d.subject for d in decisions if d.rule == HOLDOUT_RULE and d.sent}
    assert held and treated and not held & treated
    rule_codes = {
        a["payload"]["code"]
        for a in actions
        if str(a["topic"]).endswith("/offer") and a["payload"]["rule"] == HOLDOUT_RULE
    }
    redeemers = {r["shopper"] for r in coupon_lines(capture) if r["coupon"] in rule_codes}
    assert redeemers, "treated shoppers redeemed the rule's coupon"
    assert not redeemers & held
