from __future__ import annotations

import pytest

from floorwalker.rules.yamlpos import Pos, YamlError, load_yaml

TEXT = """\
# comment
id: r
when:
  dwell: {zone_tag: chilled, at_least: 10s}
steps:
  - {after: 30s}
  - after: 90s
"""


def test_every_key_and_value_has_its_position() -> None:
    doc = load_yaml(TEXT)
    assert doc.data == {
        "id": "r",
        "when": {"dwell": {"zone_tag": "chilled", "at_least": "10s"}},
        "steps": [{"after": "30s"}, {"after": "90s"}],
    }
    assert doc.values[()] == Pos(2, 1)
    assert doc.keys[("id",)] == Pos(2, 1)
    assert doc.values[("id",)] == Pos(2, 5)
    assert doc.values[("when",)] == Pos(4, 3)
    assert doc.keys[("when", "dwell", "at_least")] == Pos(4, 30)
    assert doc.values[("when", "dwell", "at_least")] == Pos(4, 40)
    assert doc.values[("steps", 0)] == Pos(6, 5)
    assert doc.keys[("steps", 1, "after")] == Pos(7, 5)


def test_missing_paths_fall_back_to_the_nearest_written_ancestor() -> None:
    doc = load_yaml(TEXT)
    assert doc.value_pos(("when", "dwell", "nope", 3)) == Pos(4, 10)
    assert doc.key_pos(("steps", 0)) == Pos(6, 5)


def test_times_and_dates_stay_text_and_keys_are_as_written() -> None:
    doc = load_yaml("to: 10:00\nstart: 2025-05-01\non: off\nn: 0x10\nf: 1.5\nz: ~\n")
    assert doc.data == {
        "to": "10:00",
        "start": "2025-05-01",
        "on": False,
        "n": 16,
        "f": 1.5,
        "z": None,
    }


def test_an_empty_document_is_none() -> None:
    doc = load_yaml("# only a comment\n")
    assert doc.data is None
    assert doc.value_pos(()) == Pos(1, 1)


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("a: 1\nb: {c: 1, c: 2}\n", 2, 11, "duplicate key `c` (first written at line 2)"),
        ("a: [1\n", 2, 1, "YAML syntax error: expected ',' or ']'"),
        ("a: 1\n---\nb: 2\n", 2, 1, "a file holds one YAML document"),
        ("a: &x [*x]\n", 1, 4, "an alias refers to itself"),
        ("? [a]\n: 1\n", 1, 3, "a key must be a plain word"),
        ("a: !!python/name:os.system x\n", 1, 4, "YAML syntax error: could not determine"),
    ],
)
def test_bad_yaml_is_refused_with_a_position(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml(text)
    issue = caught.value.issues[0]
    assert (issue.line, issue.col) == (line, col)
    assert issue.message.startswith(message)
