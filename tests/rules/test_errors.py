"""Each kind of mistake a marketer can make is reported at its line and column, with a fix."""

from __future__ import annotations

from pathlib import Path

from floorwalker.errors import RuleProblem
from floorwalker.rules.loader import check_directory

ALERT = "alert: {to: nearest, message: hi}\n"


def _problems(tmp_path: Path, text: str, name: str = "rule.yaml") -> list[RuleProblem]:
    (tmp_path / name).write_text(text)
    return check_directory(tmp_path)


def _only(tmp_path: Path, text: str, name: str = "rule.yaml") -> RuleProblem:
    problems = _problems(tmp_path, text, name)
    assert len(problems) == 1, problems
    return problems[0]


def _at(problem: RuleProblem) -> tuple[int, int]:
    return problem.line, problem.col


def test_yaml_syntax_error_is_placed_at_the_parser_marker(tmp_path: Path) -> None:
    problem = _only(
        tmp_path, "id: r\nwhen: {bell: {}}\nalert:\n  to: nearest\n  message: Call: now\n"
    )
    assert _at(problem) == (5, 16)
    assert problem.message.startswith("YAML syntax error: mapping values are not allowed here")
    assert problem.file == str(tmp_path / "rule.yaml")


def test_tab_indentation_says_to_use_spaces(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: r\nwhen:\n\tbell: {}\n" + ALERT)
    assert _at(problem) == (3, 1)
    assert "indent with spaces, not tabs" in problem.message


def test_duplicate_keys_are_refused_at_the_second_one(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: r\nwhen: {bell: {}}\n" + ALERT + "when: {visit_start: {}}\n")
    assert _at(problem) == (4, 1)
    assert problem.message == (
        "duplicate key `when` (first written at line 2); each key may appear once in a mapping"
    )


def test_unknown_key_suggests_the_nearest_allowed_one(tmp_path: Path) -> None:
    text = "id: r\nwhen:\n  dwell: {zone_tag: chilled, at_leest: 10s}\n" + ALERT
    problem = _only(tmp_path, text)  # and no "missing at_least" besides the typo
    assert _at(problem) == (3, 30)
    assert problem.message == "when.dwell: unknown key `at_leest`; allowed here: at_least, zone_tag"
    assert problem.suggestion == "at_least"
    assert str(problem).endswith("(did you mean `at_least`?)")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: r\nwhen: {bell: {}}\n" + ALERT + "limts: {}\n")
    assert _at(problem) == (4, 1)
    assert problem.message.startswith("unknown key `limts`; allowed here: alert, description")
    assert problem.suggestion == "limits"


def test_missing_key_points_at_the_parent_mapping_and_says_what_it_is_for(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: r\nwhen:\n  dwell: {zone_tag: chilled}\n" + ALERT)
    assert _at(problem) == (3, 10)
    assert problem.message == (
        "when.dwell: missing `at_least` (how long the shopper must stay in the zone "
        "before the rule fires, e.g. 10s)"
    )


def test_missing_key_in_a_block_mapping_and_at_the_top(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "# a rule\nwhen: {bell: {}}\nalert:\n  message: hi\n")
    assert [(_at(p), p.message.split(" (")[0]) for p in problems] == [
        ((2, 1), "missing `id`"),
        ((4, 3), "alert: missing `to`"),
    ]
    assert "lowercase letters, digits and dashes" in problems[0].message


def test_wrong_type_says_what_is_expected(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: r\npriority: high\nwhen: {bell: {}}\n" + ALERT)
    assert _at(problem) == (2, 11)
    assert problem.message == "priority: should be a whole number, not `high`"


def test_wrong_enum_value_lists_the_allowed_values_and_suggests_one(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: r\nwhen: {visit_start: {}}\nif:\n  tier: [vip, gld]\n" + ALERT)
    assert _at(problem) == (4, 15)
    assert (
        problem.message == "if.tier[1]: `gld` is not allowed; use one of member, silver, gold, vip"
    )
    assert problem.suggestion == "gold"


def test_unknown_zone_tag_suggests_a_known_one(tmp_path: Path) -> None:
    text = "id: r\nwhen:\n  dwell:\n    zone_tag: chiled\n    at_least: 10s\n" + ALERT
    problem = _only(tmp_path, text)
    assert _at(problem) == (4, 15)
    assert problem.message.startswith("when.dwell.zone_tag: `chiled` is not a known zone tag")
    assert "vocabulary.yaml" in problem.message
    assert problem.suggestion == "chilled"


def test_unknown_role_suggests_a_known_one(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: r\nwhen: {bell: {}}\nalert: {to: {role: manger}, message: hi}\n")
    assert _at(problem) == (3, 20)
    assert problem.message.startswith("alert.to.role: `manger` is not a known staff role")
    assert problem.suggestion == "manager"


def test_bad_duration_says_how_to_write_one(tmp_path: Path) -> None:
    text = "id: r\nwhen:\n  dwell: {zone_tag: chilled, at_least: 10 sec}\n" + ALERT
    problem = _only(tmp_path, text)
    assert _at(problem) == (3, 40)
    assert problem.message.startswith(
        "when.dwell.at_least: `10 sec` is not a duration; write 10s, 5m, 2h or 1d"
    )


def test_zero_duration_is_refused(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: r\nwhen: {bell: {}}\n" + ALERT + "limits: {cooldown: 0s}\n")
    assert _at(problem) == (4, 20)
    assert (
        problem.message
        == "limits.cooldown: `0s` is not longer than zero; a duration must be positive"
    )


def test_bad_time_of_day(tmp_path: Path) -> None:
    text = "id: r\nwhen: {bell: {}}\nif:\n  daypart: {from: 8 am, to: '10:00'}\n" + ALERT
    problem = _only(tmp_path, text)
    assert _at(problem) == (4, 19)
    assert problem.message == (
        'if.daypart.from: `8 am` is not a time of day; write "HH:MM" in quotes, '
        'from "00:00" to "23:59"'
    )


def test_escalation_steps_must_be_strictly_later(tmp_path: Path) -> None:
    text = """\
id: r
when: {bell: {}}
alert:
  to: nearest
  message: hi
  escalate:
    - {after: 90s, to: next}
    - {after: 1m30s, to: {role: manager}}
"""
    problem = _only(tmp_path, text)
    assert _at(problem) == (8, 15)
    assert problem.message.startswith(
        "alert.escalate[1].after: must be later than the step before it (1m30s)"
    )


def test_unknown_message_placeholder_suggests_the_nearest(tmp_path: Path) -> None:
    text = "id: r\nwhen: {bell: {}}\nalert:\n  to: nearest\n  message: Help in {zone_name}\n"
    problem = _only(tmp_path, text)
    assert _at(problem) == (5, 12)
    assert problem.message.startswith("alert.message: `{zone_name}` is not a placeholder")
    assert "{zone}, {bell}, {reason}, {category}, {sku}, {count}, {offer}" in problem.message
    assert problem.suggestion == "{zone}"


def test_next_is_only_for_escalation(tmp_path: Path) -> None:
    problem = _only(
        tmp_path, "id: r\nwhen: {bell: {}}\nalert: {to: [advisor, next], message: hi}\n"
    )
    assert _at(problem) == (3, 23)
    assert problem.message.startswith("alert.to[1]: `next` (the next nearest staff member")
    assert "only works inside `escalate`" in problem.message


def test_duplicate_rule_ids_report_both_places(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("id: same\nwhen: {bell: {}}\n" + ALERT)
    (tmp_path / "b.yaml").write_text("# copy\nid:   same\nwhen: {bell: {}}\n" + ALERT)
    first, second = check_directory(tmp_path)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert (first.file, *_at(first)) == (str(a), 1, 5)
    assert first.message == f"id: `same` is also used by {b}:2:7; ids must be unique"
    assert (second.file, *_at(second)) == (str(b), 2, 7)
    assert second.message == f"id: `same` is already used by {a}:1:5; ids must be unique"


def test_when_with_no_trigger(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: r\nwhen: {}\n" + ALERT)
    assert _at(problem) == (2, 7)
    assert problem.message.startswith("when: is empty; name one of enter, leave, dwell")


def test_when_with_two_triggers_points_at_the_second(tmp_path: Path) -> None:
    text = "id: r\nwhen:\n  bell: {}\n  enter: {zone_tag: entrance}\n" + ALERT
    problem = _only(tmp_path, text)
    assert _at(problem) == (4, 3)
    assert problem.message == (
        "when: has both `bell` and `enter`; a rule has exactly one trigger "
        "(chain two with `sequence`)"
    )


def test_a_pattern_with_two_signals(tmp_path: Path) -> None:
    text = (
        """\
id: r
when:
  count:
    of: {bell: {}, visit_start: {}}
    at_least: 2
    within: 1m
"""
        + ALERT
    )
    problem = _only(tmp_path, text)
    assert _at(problem) == (4, 20)
    assert problem.message.startswith("when.count.of: has both `bell` and `visit_start`")


def test_a_rule_without_an_action(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "id: r\npriority: x\nwhen: {bell: {}}\n")
    assert [(_at(p), p.message) for p in problems] == [
        ((1, 1), "a rule needs an action: add `offer:` or `alert:` (or both)"),
        ((2, 11), "priority: should be a whole number, not `x`"),
    ]


def test_empty_file_and_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    (tmp_path / "list.yaml").write_text("- id: r\n")
    empty, listed = check_directory(tmp_path)
    assert (_at(empty), empty.message) == (
        (1, 1),
        "the file is empty; a rule needs `id`, `when` and an action",
    )
    assert listed.message == "the file must be a mapping of keys such as `id:`, `when:`"


def test_bad_id_suggests_a_valid_one(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: Chilled BOGO!\nwhen: {bell: {}}\n" + ALERT)
    assert _at(problem) == (1, 5)
    assert problem.suggestion == "chilled-bogo"


def test_holdout_above_one_suggests_a_percentage(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: r\nwhen: {bell: {}}\n" + ALERT + "limits: {holdout: 10}\n")
    assert _at(problem) == (4, 19)
    assert problem.suggestion == "10%"


def test_policy_and_vocabulary_files_are_checked_too(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("offers_per_shopper:\n  - {count: 3, per: dy}\n")
    (tmp_path / "vocabulary.yaml").write_text("zone_tags: wine\n")
    policy, vocabulary = check_directory(tmp_path)
    assert (Path(policy.file).name, *_at(policy), policy.suggestion) == (
        "policy.yaml",
        2,
        21,
        "day",
    )
    assert (Path(vocabulary.file).name, *_at(vocabulary)) == ("vocabulary.yaml", 1, 12)
    assert vocabulary.message == "zone_tags: should be a list, not `wine`"


def test_every_problem_of_every_file_is_listed_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(
        "id: b\nwhen:\n  dwell: {zone_tag: chiled, at_least: 10 sec}\n"
    )
    (tmp_path / "a.yaml").write_text("id: a\nwhen: {bell: {}}\nalert: {to: nobody, message: hi}\n")
    problems = check_directory(tmp_path)
    assert [(Path(p.file).name, *_at(p)) for p in problems] == [
        ("a.yaml", 3, 13),
        ("b.yaml", 1, 1),
        ("b.yaml", 3, 21),
        ("b.yaml", 3, 39),
    ]
    assert str(problems[0]) == (
        f"{tmp_path / 'a.yaml'}:3:13: alert.to: `nobody` is not someone to alert; "
        "use nearest, advisor or {role: NAME} (did you mean `{role: nobody}`?)"
    )


def test_a_role_written_as_a_target_suggests_the_role_form(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: r\nwhen: {bell: {}}\nalert: {to: manager, message: hi}\n")
    assert _at(problem) == (3, 13)
    assert problem.suggestion == "{role: manager}"


# --------------------------------------------------------------------------- misplaced keys

OFFER = "offer: {id: o, message: hi, expires: 1h}\n"


def test_a_key_indented_under_the_wrong_section_says_where_it_belongs(tmp_path: Path) -> None:
    text = (
        "id: r\nwhen:\n  dwell: {zone_tag: chilled, at_least: 10s}\n  budget: {coupons: 100}\n"
        + OFFER
        + "limits:\n  per_shopper: [{count: 1, per: day}]\n"
    )
    problem = _only(tmp_path, text)
    assert _at(problem) == (4, 3)
    assert problem.message == (
        "`budget` is not allowed under `when`; it belongs under `limits` (2 lines down, indent 2)"
    )


def test_a_key_indented_too_little_goes_back_into_its_mapping(tmp_path: Path) -> None:
    text = "id: r\nwhen:\n  dwell:\n    zone_tag: chilled\n  at_least: 10s\n" + OFFER
    problem = _only(tmp_path, text)  # and no "missing at_least" besides
    assert _at(problem) == (5, 3)
    assert problem.message == (
        "`at_least` is not allowed under `when`; it belongs under `when.dwell`"
        " (2 lines up, indent 4)"
    )


def test_a_key_whose_section_is_not_written_yet(tmp_path: Path) -> None:
    problem = _only(tmp_path, "id: r\nwhen: {bell: {}}\n" + ALERT + "cooldown: 1h\n")
    assert _at(problem) == (4, 1)
    assert problem.message == (
        "`cooldown` is not allowed at the top level; it belongs under `limits`,"
        " which is not written yet: add `limits:` at the top level"
    )


def test_an_action_indented_under_when_is_the_only_problem(tmp_path: Path) -> None:
    text = "id: r\nwhen:\n  bell: {}\n  alert: {to: nearest, message: hi}\n"
    problem = _only(tmp_path, text)  # not also "a rule needs an action"
    assert _at(problem) == (4, 3)
    assert problem.message == (
        "`alert` is not allowed under `when`; it belongs at the top level (indent 0)"
    )


def test_a_misplaced_key_beside_a_flow_mapping_points_into_its_braces(tmp_path: Path) -> None:
    text = (
        "id: r\nlimits: {per_shopper: [{count: 1, per: day}]}\nwhen:\n"
        "  bell: {}\n  cooldown: 1h\n" + ALERT
    )
    problem = _only(tmp_path, text)
    assert problem.message == (
        "`cooldown` is not allowed under `when`; it belongs under `limits`"
        " (3 lines up, inside its braces on line 2)"
    )


def test_a_word_allowed_nowhere_is_still_a_misspelling(tmp_path: Path) -> None:
    text = "id: r\nwhen:\n  dwell: {zone_tag: chilled, at_least: 10s}\n  budgett: 1\n" + OFFER
    problem = _only(tmp_path, text)
    assert problem.message.startswith("when: unknown key `budgett`; allowed here:")
