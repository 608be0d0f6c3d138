"""`floorwalker rules test`: a rule tried on a story told in store time and zone names."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from floorwalker.cli import main
from floorwalker.devices.events import BellPress, CouponRedeemed, PosItem, Sighting, StaffAck
from floorwalker.devices.registry import load_registries
from floorwalker.engine.core.actions import Offer
from floorwalker.engine.runners.scenario import play, run_scenario
from floorwalker.engine.runners.story import read_story
from floorwalker.errors import RuleProblem, ScenarioError
from floorwalker.rules.loader import load_rules

ROOT = Path(__file__).parents[3]
CATALOG = ROOT / "floorwalker" / "rules" / "catalog"
DEMO = ROOT / "floorwalker" / "simulators" / "data" / "demo-store.yaml"
REGISTRIES = load_registries([DEMO])


def _story(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "story.yaml"
    path.write_text(body)
    return path


def _refused(
    tmp_path: Path, body: str, rules: tuple[str, ...] = ("chilled-dwell-bogo",)
) -> RuleProblem:
    with pytest.raises(ScenarioError) as err:
        read_story(_story(tmp_path, body), REGISTRIES, rules)
    (problem,) = err.value.problems
    return problem


def _run(
    tmp_path: Path, body: str, rule: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    code = main(["rules", "test", str(rule), "--scenario", str(_story(tmp_path, body))])
    out = capsys.readouterr()
    return code, out.out, out.err


DWELL = """\
date: 2026-03-02
story:
  - "09:00:00 shopper s1 at dairy-chilled for 12 s"
"""


# --------------------------------------------------------------------------- comparing


def test_a_story_that_goes_as_expected_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = DWELL + 'expect:\n  - "09:00:10 offer chilled-dwell-bogo to s1"\n'
    code, out, err = _run(tmp_path, body, CATALOG / "chilled-dwell-bogo.yaml", capsys)
    assert code == 0, err
    assert out.startswith("09:00:10 offer chilled-dwell-bogo to s1  # yogurt-bogo, code ")
    assert "as expected (1 action(s))" in err


def test_a_story_that_goes_otherwise_exits_1_with_a_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = (
        DWELL
        + 'expect:\n  - "09:00:30 offer chilled-dwell-bogo to s1"\n'
        + '  - "09:01 offer chilled-dwell-bogo to s2"\n'
    )
    body = body.replace("story:\n", 'story:\n  - "08:59 shopper s2 at entrance"\n')
    code, _out, err = _run(tmp_path, body, CATALOG / "chilled-dwell-bogo.yaml", capsys)
    assert code == 1
    assert "--- expect\n+++ got\n" in err
    assert "-09:00:30 offer chilled-dwell-bogo to s1\n" in err
    assert "-09:01 offer chilled-dwell-bogo to s2\n" in err
    assert "+09:00:10 offer chilled-dwell-bogo to s1\n" in err
    assert "differ from `expect`" in err


def test_without_expect_it_only_shows_what_happened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(tmp_path, DWELL, CATALOG / "chilled-dwell-bogo.yaml", capsys)
    assert code == 0
    assert out.count("offer chilled-dwell-bogo to s1") == 1


def test_an_expect_line_to_the_minute_matches_any_second_of_it(tmp_path: Path) -> None:
    story = _story(tmp_path, DWELL + 'expect:\n  - "09:00 offer chilled-dwell-bogo to s1"\n')
    outcome = run_scenario(CATALOG / "chilled-dwell-bogo.yaml", story, REGISTRIES)
    assert outcome.diff() is None
    story.write_text(DWELL + 'expect:\n  - "09:01 offer chilled-dwell-bogo to s1"\n')
    assert run_scenario(CATALOG / "chilled-dwell-bogo.yaml", story, REGISTRIES).diff()


def test_suppressions_are_shown_with_their_reason(tmp_path: Path) -> None:
    body = """\
shoppers: {s3: anonymous}
story:
  - "09:00 shopper s1 at dairy-chilled for 12 s"
  - "09:05 s2 buys yogurt"
  - "09:06 shopper s2 at dairy-chilled for 15 s"
  - "09:10 shopper s3 at dairy-chilled for 15 s"
  - "09:20 shopper s1 at dairy-chilled for 15 s"
"""
    report = run_scenario(
        CATALOG / "chilled-dwell-bogo.yaml", _story(tmp_path, body), REGISTRIES
    ).report()
    lines = report.splitlines()
    assert lines[0].startswith("09:00:10 offer chilled-dwell-bogo to s1")
    assert lines[1:] == [
        "# 09:06:10 chilled-dwell-bogo: offer not sent to s2 (unless:bought)",
        "# 09:10:10 chilled-dwell-bogo: offer not sent to s3 (no_consent)",
        "# 09:20:10 chilled-dwell-bogo: offer not sent to s1 (cap)",
    ]


# --------------------------------------------------------------------------- translation


def test_the_story_becomes_the_contracts_events_in_store_time(tmp_path: Path) -> None:
    body = """\
date: 2026-03-02
story:
  - "08:59 staff band-05 at cosmetics for 2 m"
  - "09:00:00 shopper s1 at dairy-chilled for 12 s"
  - "09:00:30 s1 buys yogurt for 3.50"
  - "09:00:31 s1 checks out"
  - "09:00:40 s1 redeems yogurt-bogo"
  - "09:01 bell at cosmetics reason help by s1"
  - "09:01:10 band-05 acks"
"""
    rules = load_rules(CATALOG)
    story = read_story(_story(tmp_path, body), REGISTRIES, [r.id for r in rules.rules])
    outcome = play(story, rules)
    seen = outcome.events
    tz = ZoneInfo("Asia/Shanghai")
    nine = datetime(2026, 3, 2, 9, 0, tzinfo=tz).timestamp()
    sightings = [e for e in seen if isinstance(e, Sighting) and e.subject == "s1"]
    assert {(e.zone, e.beacon, e.gateway) for e in sightings} == {
        ("dairy-chilled", "b-dairy-1", "gw-1")
    }
    assert [e.ts - nine for e in sightings] == [float(i) for i in range(13)]
    assert any(isinstance(e, Sighting) and e.is_staff and e.subject == "band-05" for e in seen)
    (item,) = [e for e in seen if isinstance(e, PosItem)]
    assert (item.category, item.price, item.shopper, item.ts - nine) == ("yogurt", 3.5, "s1", 30.0)
    (offer,) = [a for a in outcome.actions if isinstance(a, Offer)]
    (redeemed,) = [e for e in seen if isinstance(e, CouponRedeemed)]
    assert redeemed.code == offer.code
    (press,) = [e for e in seen if isinstance(e, BellPress)]
    assert (press.bell, press.reason, press.shopper) == ("bell-cosmetics", "help", "s1")
    (ack,) = [e for e in seen if isinstance(e, StaffAck)]
    page = next(h for h in outcome.happened if h.rule == "service-bell")
    assert (ack.band, ack.action) == ("band-05", "ack") and page.target == "band-05"
    assert [h.line for h in outcome.happened if h.rule == "service-bell"] == [
        "09:01:00 alert service-bell to band-05 step 1"  # the ack stopped the escalation
    ]


def test_profiles_come_from_the_story(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = """\
shoppers:
  v1: {tier: vip, advisor: band-05}
  old: {lifetime_value: 6000, last_visit: 200 days ago}
story:
  - "09:00 v1 at entrance"
  - "09:01 old at entrance"
expect:
  - "09:00 alert vip-advisor to band-05"
  - "09:01 offer dormant-welcome-back to old"
  - "09:01 alert dormant-welcome-back to band-05"
"""
    body = body.replace("old: {", "old: {advisor: band-05, ")
    code, out, err = _run(tmp_path, body, CATALOG, capsys)
    assert code == 0, out + err


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("line", "col", "message", "suggestion"),
    [
        ("09:00 shopper s1 at dary for 12 s", 26, "unknown zone `dary`", "dairy"),
        ("9.00 shopper s1 at bakery", 6, "`9.00` is not a store time", None),
        ("25:00 shopper s1 at bakery", 6, "`25:00` is not a store time", None),
        ("09:00 s1 bys yogurt", 15, "`bys` is not something a shopper does here", "buys"),
        ("09:00 shopper s1 at bakery for twelve", 37, "`twelve` is not a duration", None),
        ("09:00 shopper s1 at chilled", 26, "several zones are tagged `chilled`", "dairy-chilled"),
        ("09:00 bell at bakery", 20, "zone `bakery` has no bell", None),
        ("09:00 bell bell-cosmetic", 17, "unknown bell `bell-cosmetic`", "bell-cosmetics"),
        ("09:00 staff band-5 at bakery", 18, "unknown band `band-5`", "band-05"),
        ("09:00 band-05 ackd", 20, "`ackd` is not something a band does", "acks"),
        ("09:00 device qr-checkou offline", 19, "unknown device `qr-checkou`", "qr-checkout"),
        ("09:00 s1 buys", 19, "the line ends where a category", None),
        ("09:00 shopper s1 at bakery now", 33, "unexpected `now`", None),
    ],
)
def test_a_bad_story_line_is_refused_at_its_word_with_a_suggestion(
    tmp_path: Path, line: str, col: int, message: str, suggestion: str | None
) -> None:
    problem = _refused(tmp_path, f'story:\n  - "{line}"\n')
    assert (problem.line, problem.col) == (2, col), problem
    assert problem.message.startswith(message), problem.message
    assert problem.suggestion == suggestion
    assert str(problem).startswith(f"{tmp_path / 'story.yaml'}:2:{col}: ")


def test_columns_count_from_the_line_itself_when_it_is_not_quoted(tmp_path: Path) -> None:
    problem = _refused(tmp_path, "story:\n  - 09:00 shopper s1 at dary\n")
    assert (problem.line, problem.col) == (2, 25)


def test_a_story_must_go_forward_in_time(tmp_path: Path) -> None:
    problem = _refused(tmp_path, 'story:\n  - "09:05 s1 buys milk"\n  - "09:00 s1 buys milk"\n')
    assert (problem.line, problem.col) == (3, 6)
    assert "goes back in time" in problem.message


@pytest.mark.parametrize(
    ("line", "message", "suggestion"),
    [
        (
            "09:00:10 offer chilled-dwell-bogp to s1",
            "unknown rule `chilled-dwell-bogp`",
            "chilled-dwell-bogo",
        ),
        ("09:00:10 ofer chilled-dwell-bogo to s1", "`ofer`: an expected action is", "offer"),
        ("09:00:10 offer chilled-dwell-bogo to s11", "`s11` is not a shopper of the story", "s1"),
        (
            "09:00:10 alert chilled-dwell-bogo to band-5",
            "`band-5` is not a band of the store",
            "band-05",
        ),
    ],
)
def test_a_bad_expect_line_is_refused(
    tmp_path: Path, line: str, message: str, suggestion: str
) -> None:
    problem = _refused(tmp_path, DWELL + f'expect:\n  - "{line}"\n')
    assert problem.line == 5
    assert problem.message.startswith(message), problem.message
    assert problem.suggestion == suggestion


def test_a_bad_scenario_key_is_refused_like_a_rule_key(tmp_path: Path) -> None:
    problem = _refused(tmp_path, "stroy:\n  - 09:00 s1 buys milk\n")
    assert problem.suggestion == "story"
    problem = _refused(
        tmp_path, "shoppers: {s1: {tier: platinum}}\nstory: ['09:00 s1 buys milk']\n"
    )
    assert problem.line == 1 and "platinum" in problem.message


def test_a_store_the_registries_do_not_hold(tmp_path: Path) -> None:
    problem = _refused(tmp_path, "store: s01\nstory: ['09:00 s1 buys milk']\n")
    assert (problem.line, problem.suggestion) == (1, "s001")


def test_redeeming_a_coupon_never_received_is_refused_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = 'story:\n  - "09:00 s1 buys milk"\n  - "09:01 s1 redeems yogurt-bogo"\n'
    code, _out, err = _run(tmp_path, body, CATALOG / "chilled-dwell-bogo.yaml", capsys)
    assert code == 1
    assert f"{tmp_path / 'story.yaml'}:3:6: s1 redeems `yogurt-bogo`, but no coupon" in err


def test_answering_without_an_alert_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = _run(tmp_path, 'story: ["09:00 band-05 acks"]\n', CATALOG, capsys)
    assert code == 1
    assert "band-05 answers, but no alert reached band-05 by 09:00:00" in err
