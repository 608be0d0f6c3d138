from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from floorwalker.errors import RuleSetError
from floorwalker.rules.loader import check_directory, load_rule_file, load_rules
from floorwalker.rules.model import (
    Absence,
    Advisor,
    AlertSpec,
    BirthdayWithin,
    Bought,
    Budget,
    ByRole,
    Campaign,
    Cap,
    Count,
    Daypart,
    DaysOfWeek,
    DaysSinceLastVisit,
    Escalation,
    Fatigue,
    FirstVisit,
    LifetimeValue,
    Limits,
    MarketingConsent,
    NamedCondition,
    Nearest,
    NextNearest,
    OfferSpec,
    Pattern,
    Policy,
    Rule,
    RuleSet,
    SegmentIn,
    Sequence,
    Single,
    SourceRef,
    StaffInZone,
    TierIn,
)
from floorwalker.rules.vocabulary import DEFAULT_VOCABULARY
from tests.rules.examples import FULL_RULE

CATALOG = Path(__file__).parents[2] / "floorwalker" / "rules" / "catalog"
CATALOG_IDS = {
    "chilled-dwell-bogo",
    "service-bell",
    "formula-to-babyfood",
    "dormant-welcome-back",
    "vip-advisor",
    "new-visitor-greet",
    "hesitant-tester",
    "birthday-week",
    "daypart-breakfast",
    "assist-long-dwell",
    "repeated-bell",
}


@pytest.fixture(scope="module")
def catalog() -> RuleSet:
    return load_rules(CATALOG)


def _rule(catalog: RuleSet, rule_id: str) -> Rule:
    return catalog.by_id()[rule_id]


def test_the_catalog_loads_every_shipped_rule(catalog: RuleSet) -> None:
    assert {r.id for r in catalog.rules} == CATALOG_IDS
    assert [r.id for r in catalog.rules] == sorted(CATALOG_IDS)
    assert check_directory(CATALOG) == []


def test_chilled_dwell_bogo(catalog: RuleSet) -> None:
    rule = _rule(catalog, "chilled-dwell-bogo")
    assert rule.when == Single(
        Pattern(kind="dwell", zone_tags=frozenset({"chilled"}), dwell_s=10.0)
    )
    assert rule.unless == (
        NamedCondition(
            "bought",
            Bought(Pattern(kind="pos_item", categories=frozenset({"yogurt"})), within_s=1800.0),
        ),
    )
    assert rule.conditions == ()
    assert rule.actions == (
        OfferSpec(
            offer="yogurt-bogo",
            message="Buy one yogurt, get one free - show this at the till.",
            expires_s=7200.0,
            cost=1.2,
        ),
    )
    assert rule.limits == Limits(per_shopper=(Cap(count=1, period="day"),))
    assert rule.priority == 50
    assert rule.enabled is True
    assert rule.source == SourceRef(str(CATALOG / "chilled-dwell-bogo.yaml"), 2, 1)


def test_repeated_bell_counts_presses_per_bell_and_resets_on_an_answer(catalog: RuleSet) -> None:
    rule = _rule(catalog, "repeated-bell")
    assert rule.when == Count(
        of=Pattern(kind="bell"),
        at_least=3,
        within_s=120.0,
        by="bell",
        reset_on=Pattern(kind="staff_ack", ack_actions=frozenset({"ack", "done"})),
    )
    assert rule.actions == (
        AlertSpec(
            to=(ByRole("manager"),),
            message="A bell in {zone} was pressed {count} times without an answer.",
            priority="urgent",
        ),
    )


def test_service_bell_escalates_to_the_next_nearest_then_the_manager(catalog: RuleSet) -> None:
    rule = _rule(catalog, "service-bell")
    assert rule.when == Single(Pattern(kind="bell"))
    assert rule.actions == (
        AlertSpec(
            to=(Nearest(anywhere=True),),
            message="A customer needs help in {zone}.",
            priority="high",
            escalate=(
                Escalation(after_s=30.0, to=(NextNearest(),)),
                Escalation(after_s=90.0, to=(ByRole("manager"),)),
            ),
            response_target_s=120.0,
        ),
    )
    assert rule.limits == Limits()


def test_hesitant_tester_is_an_absence(catalog: RuleSet) -> None:
    rule = _rule(catalog, "hesitant-tester")
    assert rule.when == Absence(
        after=Pattern(kind="dwell", zone_tags=frozenset({"cosmetics-testers"}), dwell_s=20.0),
        missing=Pattern(kind="pos_item", categories=frozenset({"cosmetics"})),
        within_s=900.0,
        by="shopper",
    )


def test_dormant_welcome_back_keeps_conditions_and_actions_in_written_order(
    catalog: RuleSet,
) -> None:
    rule = _rule(catalog, "dormant-welcome-back")
    assert rule.when == Single(Pattern(kind="visit_start"))
    assert rule.conditions == (
        NamedCondition("lifetime_value", LifetimeValue(at_least=5000.0)),
        NamedCondition("days_since_last_visit", DaysSinceLastVisit(at_least=180.0)),
    )
    assert [type(a) for a in rule.actions] == [OfferSpec, AlertSpec]
    alert = rule.actions[1]
    assert isinstance(alert, AlertSpec)
    assert alert.to == (Advisor(),)
    assert rule.limits.per_shopper == (Cap(1, "visit"),)


def test_other_catalog_conditions(catalog: RuleSet) -> None:
    assert _rule(catalog, "daypart-breakfast").conditions == (
        NamedCondition("daypart", Daypart(start_min=8 * 60, end_min=10 * 60)),
    )
    assert _rule(catalog, "birthday-week").conditions == (
        NamedCondition("tier", TierIn(frozenset({"member", "silver", "gold", "vip"}))),
        NamedCondition("birthday_within_days", BirthdayWithin(3)),
    )
    assert _rule(catalog, "assist-long-dwell").conditions == (
        NamedCondition("staff_in_zone", StaffInZone(expected=False)),
    )
    assert _rule(catalog, "new-visitor-greet").conditions == (
        NamedCondition("first_visit", FirstVisit(expected=True)),
    )
    assert _rule(catalog, "vip-advisor").conditions == (
        NamedCondition("tier", TierIn(frozenset({"vip"}))),
    )


def test_catalog_policy(catalog: RuleSet) -> None:
    assert catalog.policy == Policy(
        per_shopper=(Cap(3, "day"),), fatigue=Fatigue(streak=3, backoff_s=7 * 86400.0)
    )


def test_every_part_of_the_language_compiles(tmp_path: Path) -> None:
    path = tmp_path / "full.yaml"
    path.write_text(FULL_RULE)
    rule = load_rule_file(path, DEFAULT_VOCABULARY)
    assert rule == Rule(
        id="full-syntax",
        description="Uses every part of the language.",
        priority=7,
        enabled=False,
        source=SourceRef(str(path), 1, 1),
        when=Sequence(
            first=Pattern(kind="enter", zone_tags=frozenset({"chilled", "dairy"})),
            then=Pattern(
                kind="pos_item",
                categories=frozenset({"yogurt"}),
                skus=frozenset({"123", "abc"}),
            ),
            within_s=5400.0,
            by="receipt",
        ),
        conditions=(
            NamedCondition("segment", SegmentIn(frozenset({"loyal"}))),
            NamedCondition("consent", MarketingConsent(required=True)),
            NamedCondition("days", DaysOfWeek(frozenset({0, 6}))),
            NamedCondition("campaign", Campaign(date(2025, 5, 1), date(2025, 5, 31))),
            NamedCondition("daypart", Daypart(start_min=22 * 60, end_min=2 * 60 + 30)),
        ),
        unless=(
            NamedCondition("lifetime_value", LifetimeValue(at_most=10.0)),
            NamedCondition("days_since_last_visit", DaysSinceLastVisit(1.0, 30.5)),
        ),
        actions=(
            OfferSpec(
                offer="full-offer",
                message="{count} x {sku} in {zone}",
                expires_s=90.0,
                code_prefix="FULL-",
            ),
            AlertSpec(
                to=(ByRole("cashier"), Nearest(anywhere=False)),
                message="Look at {zone}",
                priority="low",
                escalate=(Escalation(60.0, (NextNearest(), Advisor())),),
                include_shopper=False,
            ),
        ),
        limits=Limits(
            per_shopper=(Cap(1, "visit"), Cap(2, "week")),
            cooldown_s=7200.0,
            budget=Budget(coupons=100, amount=250.5),
            quiet_hours=(Daypart(21 * 60, 8 * 60),),
            holdout=0.125,
        ),
    )


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("leave: {zone_tag: bakery}", Pattern(kind="leave", zone_tags=frozenset({"bakery"}))),
        ("visit_start:", Pattern(kind="visit_start")),
        (
            "bell: {reason: [help, complaint]}",
            Pattern(kind="bell", reasons=frozenset({"help", "complaint"})),
        ),
        ("checkout: {min_total: 200}", Pattern(kind="checkout", min_total=200.0)),
        (
            "coupon_redeemed: {offer: yogurt-bogo}",
            Pattern(kind="coupon_redeemed", offers=frozenset({"yogurt-bogo"})),
        ),
        (
            "staff_ack: {action: decline}",
            Pattern(kind="staff_ack", ack_actions=frozenset({"decline"})),
        ),
        (
            "pos_item: {sku: 4006381333931}",
            Pattern(kind="pos_item", skus=frozenset({"4006381333931"})),
        ),
    ],
)
def test_simple_triggers(tmp_path: Path, when: str, expected: Pattern) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(f"id: r\nwhen:\n  {when}\nalert: {{to: nearest, message: hi}}\n")
    assert load_rule_file(path).when == Single(expected)


def _write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


_BELL = "id: {id}\nwhen: {{bell: {{}}}}\nalert: {{to: nearest, message: hi}}\n"


def test_reserved_and_hidden_files_are_not_rules_and_yml_is(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "a.yml": _BELL.format(id="a"),
            ".b.yaml": "not: a rule",
            "notes.txt": "not yaml at all: [",
            "policy.yaml": "fatigue: off\nquiet_hours: {from: '22:00', to: '07:00'}\n",
            "vocabulary.yaml": "zone_tags: [wine]\n",
        },
    )
    rule_set = load_rules(tmp_path)
    assert [r.id for r in rule_set.rules] == ["a"]
    assert rule_set.policy == Policy(fatigue=None, quiet_hours=(Daypart(22 * 60, 7 * 60),))


def test_an_empty_policy_file_and_no_policy_file_mean_the_defaults(tmp_path: Path) -> None:
    _write(tmp_path, {"a.yaml": _BELL.format(id="a")})
    assert load_rules(tmp_path).policy == Policy()
    _write(tmp_path, {"policy.yaml": "# nothing yet\n"})
    assert load_rules(tmp_path).policy == Policy()


_WINE = """\
id: wine
when: {dwell: {zone_tag: wine, at_least: 5s}}
alert: {to: {role: sommelier}, message: hi}
"""


def test_vocabulary_file_extends_zone_tags_and_roles(tmp_path: Path) -> None:
    _write(tmp_path, {"wine.yaml": _WINE})
    assert len(check_directory(tmp_path)) == 2
    _write(tmp_path, {"vocabulary.yaml": "zone_tags: [wine]\nroles: [sommelier]\n"})
    assert [r.id for r in load_rules(tmp_path).rules] == ["wine"]


def test_registry_tags_and_roles_extend_the_vocabulary(tmp_path: Path) -> None:
    _write(tmp_path, {"wine.yaml": _WINE})
    rule_set = load_rules(tmp_path, extra_tags=["wine"], extra_roles=("sommelier",))
    assert rule_set.rules[0].actions[0] == AlertSpec(to=(ByRole("sommelier"),), message="hi")


def test_a_directory_with_any_problem_yields_no_rule_set(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "good.yaml": _BELL.format(id="good"),
            "bad1.yaml": _BELL.format(id="Bad 1"),
            "bad2.yaml": "id: bad2\nwhen: {bell: {}}\n",
        },
    )
    with pytest.raises(RuleSetError) as caught:
        load_rules(tmp_path)
    assert [(Path(p.file).name, p.line) for p in caught.value.problems] == [
        ("bad1.yaml", 1),
        ("bad2.yaml", 1),
    ]
    assert str(caught.value).count("\n") == 1


def test_load_rule_file_raises_every_problem_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "id: r\npriority: x\nwhen: {bell: {}}\nalert: {to: nearest, message: '{zne}'}\n"
    )
    with pytest.raises(RuleSetError) as caught:
        load_rule_file(path)
    assert [(p.line, p.col) for p in caught.value.problems] == [(2, 11), (4, 31)]


def test_a_missing_directory_is_one_problem(tmp_path: Path) -> None:
    problems = check_directory(tmp_path / "nope")
    assert [(p.line, p.message) for p in problems] == [(1, "is not a directory of rule files")]
    with pytest.raises(RuleSetError):
        load_rules(tmp_path / "nope")


def test_an_empty_directory_is_an_empty_rule_set(tmp_path: Path) -> None:
    assert load_rules(tmp_path) == RuleSet(rules=(), policy=Policy())
