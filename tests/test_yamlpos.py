from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from floorwalker.yamlpos import (
    EXPLAIN_MAX_CHARS,
    MAX_DEPTH,
    MAX_INT,
    Pos,
    YamlError,
    decode_text,
    load_yaml,
    read_capped,
)

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
        ("a: &x [*x]\n", 1, 4, "YAML anchors and aliases (`&name`, `*name`) are not allowed"),
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


# -- garbled files: refused with a position, quickly, in little memory ----------------

ANCHORS = "YAML anchors and aliases"
DEEP = f"nested more than {MAX_DEPTH} levels deep"


def _laughs(levels: int = 9) -> str:
    """The "billion laughs": each level nine aliases of the one before (9**9 leaves)."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels):
        refs = ",".join([f"*l{n - 1}"] * 9)
        lines.append(f"l{n}: &l{n} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("a: b\x00c\n", 1, 5, "a NUL byte is not allowed"),
        ("a: 1\nb: x\x1ey\n", 2, 5, "control character U+001E is not allowed"),
        ("a: 1\r\nb: \x7f\n", 2, 4, "control character U+007F"),
        ("a: \x85\n", 1, 4, "control character U+0085"),
        (_laughs(), 1, 5, ANCHORS),
        ("a: &x 1\n", 1, 4, ANCHORS),
        ("a: *x\n", 1, 4, ANCHORS),
        ("a: [1, *x]\n", 1, 8, ANCHORS),
        ("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n", 1, 3 + MAX_DEPTH, DEEP),
        (
            "a:\n" + "".join(" " * i + "-\n" for i in range(1, 40)),
            MAX_DEPTH + 1,
            MAX_DEPTH + 1,
            DEEP,
        ),
        ("a: " + "9" * 5000 + "\n", 1, 4, "a value of 5,000 characters is over the limit"),
        ("a: " + "9" * 4000 + "\n", 1, 4, "`99999"),
        ("a: !!int 0x\n", 1, 4, "`0x` cannot be read as `!!int`"),
        (f"a: {MAX_INT + 1}\n", 1, 4, f"`{MAX_INT + 1}` is too large a number"),
        ("a: !!binary aGk=\n", 1, 4, "the tag `!!binary` is not allowed"),
        ("a: !!timestamp 2001-12-14\n", 1, 4, "the tag `!!timestamp` is not allowed"),
        ("a: !!bool maybe\n", 1, 4, "`maybe` cannot be read as `!!bool`"),
    ],
)
def test_garbled_text_is_refused_with_a_position(
    text: str, line: int, col: int, message: str
) -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml(text)
    issue = caught.value.issues[0]
    assert (issue.line, issue.col, issue.message[: len(message)]) == (line, col, message)


def test_the_largest_whole_number_and_ampersands_in_text_are_fine() -> None:
    doc = load_yaml(f"a: {MAX_INT}\nb: -{MAX_INT}\nc: fish & chips\nd: 2 * 3\n")
    assert doc.data == {"a": MAX_INT, "b": -MAX_INT, "c": "fish & chips", "d": "2 * 3"}
    assert load_yaml("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)).data is not None


def test_a_few_control_characters_are_listed_then_counted() -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml("a: " + "\x01" * 20 + "\n")
    issues = caught.value.issues
    assert [i.col for i in issues[:5]] == [4, 5, 6, 7, 8]
    assert issues[5].message == "and 15 more such character(s)"


@pytest.mark.parametrize(
    "text",
    [
        _laughs(),
        "a: " + "[" * 100_000 + "]" * 100_000,
        "a: " + "{b: " * 5000 + "1" + "}" * 5000,
        "a:\n" + "".join(" " * i + "- x:\n" for i in range(1, 1500)),
        "a: " + "[" * 999 + "]" * 999 + "\nb: [\n",  # a syntax error after deep nesting
        "a: [" + "1, " * (EXPLAIN_MAX_CHARS // 3 + 10) + "\nb: c: d\n",
    ],
    ids=["laughs", "flow-100k", "mappings-5k", "block-1500", "deep-then-error", "long-error"],
)
def test_bombs_cost_little_time_and_memory(text: str) -> None:
    tracemalloc.start()
    started = time.process_time()
    try:
        with pytest.raises(YamlError):
            load_yaml(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.process_time() - started < 5.0  # typically 0.01-0.5 s; tracemalloc slows it
    assert peak < 64 * 1024 * 1024


def test_libyaml_and_python_parsers_agree_on_refusals() -> None:
    # A syntax error makes the file go through the pure-Python parser as well.
    for text in ("a: &x 1\nb: [\n", "a: " + "[" * 40 + "\n"):
        with pytest.raises(YamlError) as caught:
            load_yaml(text)
        assert caught.value.issues[0].message.startswith((ANCHORS, DEEP)), text


@pytest.mark.parametrize(
    ("data", "line", "col", "message"),
    [
        ("a: caf\u00e9\n".encode("latin-1"), 1, 7, "byte 0xE9 is not UTF-8 (perhaps Latin-1"),
        ("a: 1\nb: \u00e9\n".encode("cp1252"), 2, 4, "byte 0xE9 is not UTF-8"),
        ("a: 1\n".encode("utf-16"), 1, 1, "is UTF-16 text; save the file as UTF-8"),
        ("a: 1\n".encode("utf-16-be"), 1, 1, "is UTF-16 or UTF-32 text"),
        ("a: 1\n".encode("utf-32"), 1, 1, "is UTF-32 text"),
    ],
)
def test_only_utf8_is_read(data: bytes, line: int, col: int, message: str) -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml(decode_text(data))
    issue = caught.value.issues[0]
    assert (issue.line, issue.col, issue.message[: len(message)]) == (line, col, message)


def test_a_utf8_bom_is_dropped() -> None:
    assert load_yaml(decode_text(b"\xef\xbb\xbfa: 1\n")).data == {"a": 1}


def test_files_over_the_cap_are_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * 5000)
    assert read_capped(path, max_bytes=5003) == path.read_bytes()
    with pytest.raises(YamlError, match="is 5,003 bytes, over the limit of 4 KiB for a rule"):
        read_capped(path, max_bytes=4096, what="a rule file")
    with pytest.raises(YamlError, match="is not a regular file"):
        read_capped(tmp_path, max_bytes=4096)
